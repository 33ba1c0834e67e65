"""The admin-API client every ``wardgate`` CLI command uses (stdlib only: the CLI must not
need the dev extras).

One place decides how a CLI talks to a running gateway: ``--url`` / ``WARDGATE_URL`` and
``--admin-key`` / ``WARDGATE_ADMIN_KEY``, bearer auth, JSON both ways, a 30 s timeout, and
errors reduced to the gateway's own OpenAI-shaped message (``HTTP 403: ...``) or to "cannot
reach URL", so an operator sees the same wording from ``spend``, ``cache``, ``approvals`` and
``audit``.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping
from typing import Any, NoReturn

import orjson
import typer

DEFAULT_URL = "http://127.0.0.1:8080"


class ClientError(Exception):
    """The gateway refused or could not be reached; ``str()`` is the message to show.

    ``status`` is the HTTP status of a refusal (None when the gateway was not reached),
    ``code`` the OpenAI-shaped error code when the gateway sent one, ``message`` its message.
    """

    def __init__(self, text: str, *, status: int | None = None, code: str = "", message: str = "") -> None:
        super().__init__(text)
        self.status = status
        self.code = code
        self.message = message or text


class AdminClient:
    def __init__(self, url: str | None = None, key: str | None = None, timeout: float = 30.0) -> None:
        self.url = (url or os.environ.get("WARDGATE_URL") or DEFAULT_URL).rstrip("/")
        self.key = key or os.environ.get("WARDGATE_ADMIN_KEY")
        if not self.key:
            raise ClientError("An admin key is needed: --admin-key or WARDGATE_ADMIN_KEY.")
        self.timeout = timeout

    def _open(self, method: str, path: str, params: Mapping[str, Any] | None, body: Any = None) -> Any:
        query = urllib.parse.urlencode({k: v for k, v in (params or {}).items() if v is not None})
        url = f"{self.url}{path}" + (f"?{query}" if query else "")
        req = urllib.request.Request(
            url,
            data=orjson.dumps(body) if body is not None else None,
            method=method,
            headers={
                "Authorization": f"Bearer {self.key}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        try:
            return urllib.request.urlopen(req, timeout=self.timeout)
        except urllib.error.HTTPError as exc:
            raise _refusal(exc) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ClientError(f"Cannot reach the gateway at {self.url}: {reason}") from None

    def call(self, method: str, path: str, params: Mapping[str, Any] | None = None, body: Any = None) -> Any:
        """One JSON request; the decoded answer (None for an empty body)."""
        with self._open(method, path, params, body) as resp:
            data = resp.read()
        return orjson.loads(data) if data else None

    def get(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        return self.call("GET", path, params)

    def stream(
        self, path: str, params: Mapping[str, Any] | None = None, chunk: int = 1 << 16
    ) -> Iterator[bytes]:
        with self._open("GET", path, params) as resp:
            while data := resp.read(chunk):
                yield data


def _refusal(exc: urllib.error.HTTPError) -> ClientError:
    try:
        err = orjson.loads(exc.read())["error"]
        message, code = str(err["message"]), str(err.get("code") or "")
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message, code = str(exc.reason), ""
    return ClientError(f"HTTP {exc.code}: {message}", status=exc.code, code=code, message=message)


def fail(exc: ClientError) -> NoReturn:
    """Print the error the plain way the ``spend`` and ``cache`` commands always have; exit 1."""
    typer.echo(f"error: {exc}", err=True)
    raise typer.Exit(1) from None


def admin_call(
    method: str,
    url: str,
    key: str,
    path: str,
    params: Mapping[str, Any] | None = None,
    body: Any = None,
) -> Any:
    """``AdminClient(url, key).call(...)`` for a CLI command: an error is printed, exit 1."""
    try:
        return AdminClient(url, key).call(method, path, params, body)
    except ClientError as exc:
        fail(exc)
