"""Jinja2 for the console: every template autoescaped, undefined names an error, and the
static files served from memory with their integrity.

Autoescape is on for every template whatever its name (``autoescape=True``), so a tool
argument, an agent id or a comment such as ``<script>`` or ``[conceal]`` shows literally; no
template uses ``|safe`` and no filter here returns markup. ``pretty`` renders JSON as text
(escaped like any other). Static files are read once at start into memory, from a fixed list
(no path from the request ever reaches the file system), with a content hash in their URL so
they can be cached for good.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
_MEDIA = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}
_STATUS_TITLES = {
    400: "Bad request",
    401: "Not signed in",
    403: "Not allowed",
    404: "Not found",
    409: "Already decided",
    413: "Too large",
    503: "Unavailable",
}


@dataclass(frozen=True, slots=True)
class StaticFile:
    body: bytes
    media_type: str
    #: ``sha384-…`` (Subresource Integrity), also the cache key in the URL.
    integrity: str

    @property
    def version(self) -> str:
        return hashlib.sha256(self.body).hexdigest()[:12]


def load_static(directory: Path = STATIC) -> dict[str, StaticFile]:
    files: dict[str, StaticFile] = {}
    for path in sorted(directory.iterdir()):
        media = _MEDIA.get(path.suffix)
        if media is None or not path.is_file():
            continue
        body = path.read_bytes()
        sri = "sha384-" + base64.b64encode(hashlib.sha384(body).digest()).decode()
        files[path.name] = StaticFile(body, media, sri)
    return files


def _time(ts: float | None) -> str:
    if ts is None:
        return "—"
    return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _left(ts: float | None, now: float | None = None) -> str:
    """Time left until ``ts`` in words ("12 min", "expired")."""
    if ts is None:
        return "—"
    seconds = float(ts) - (time.time() if now is None else now)
    if seconds <= 0:
        return "expired"
    if seconds < 120:
        return f"{int(seconds)} s"
    if seconds < 7200:
        return f"{int(seconds // 60)} min"
    return f"{seconds / 3600:.1f} h"


def _reasons(step: dict[str, Any]) -> list[str]:
    """A timeline step's decision reasons, each prefixed by the stage that gave it."""
    out: list[str] = []
    for decision in step.get("decisions") or ():
        if isinstance(decision, dict):
            out += [f"{decision.get('stage')}: {r}" for r in decision.get("reasons") or ()]
    return out


def _ms(value: Any) -> str:
    try:
        return f"{float(value):.0f} ms"
    except (TypeError, ValueError):
        return "—"


def _pretty(value: Any) -> str:
    """JSON as indented text (a plain string: the template escapes it)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        return str(value)


class Templates:
    """The console's Jinja2 environment and static files (one per app, built at start)."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.static = load_static()
        self.env = Environment(
            loader=FileSystemLoader(str(TEMPLATES)),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(time=_time, left=_left, pretty=_pretty, reasons=_reasons, ms=_ms)
        self.env.globals.update(prefix=prefix, static=self.static_url, integrity=self.integrity, nav=())

    def static_url(self, name: str) -> str:
        return f"{self.prefix}/static/{name}?v={self.static[name].version}"

    def integrity(self, name: str) -> str:
        return self.static[name].integrity

    def render(self, template: str, **context: Any) -> str:
        return self.env.get_template(template).render(**context)

    def response(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        return HTMLResponse(self.render(template, **context), status_code=status_code)

    def error(self, request: Request, status: int, message: str) -> Response:
        """The error page (``error.html``): a title for the status and the message, escaped."""
        title = _STATUS_TITLES.get(status, "Error" if status < 500 else "Server error")
        if request.headers.get("hx-request"):
            return HTMLResponse(
                self.render("error_fragment.html", status=status, title=title, message=message),
                status_code=status,
            )
        return self.response(
            "error.html", status, status=status, title=title, message=message, user=None, csrf=""
        )

    def static_response(self, name: str) -> Response:
        found = self.static.get(name)
        if found is None:
            return Response("Not found", status_code=404, media_type="text/plain")
        return Response(
            found.body,
            media_type=found.media_type,
            headers={"cache-control": "public, max-age=31536000, immutable"},
        )
