"""A start-up failure is one paragraph an operator can act on, not a 200-line traceback.

When a component cannot start (PostgreSQL or Redis unreachable, a file it refuses), the
worker's lifespan fails and uvicorn prints what Starlette hands it: the whole traceback, often
ending in a bare ``ConnectionRefusedError`` that names no address. ``describe`` turns the
exception into ``<component> cannot start: <what failed> (<setting> → host:port)``, naming
every address the component's section points at; ``CleanStartupFailure`` (an ASGI wrapper
that only looks at the lifespan) puts that paragraph where the traceback was. The traceback
is kept when ``server.log_level`` is ``debug`` (``wardgate serve --debug``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Exceptions that say a service could not be reached (their address is in the settings).
_UNREACHABLE_WORDS = (
    "connect",
    "refused",
    "unreachable",
    "timed out",
    "timeout",
    "name or service",
    "resolve",
)


class ComponentStartError(RuntimeError):
    """A component's ``start`` failed; the message is the paragraph an operator reads."""


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        if isinstance(current, BaseExceptionGroup) and current.exceptions:
            yield from _chain(current.exceptions[0])
        current = current.__cause__ or current.__context__


def _addresses(section: BaseModel | None, name: str) -> list[str]:
    """``name.field → host:port`` of the section's URLs; with a ``backend``, only its URLs."""
    if section is None:
        return []
    data: dict[str, Any] = section.model_dump()
    backend = data.get("backend")
    found = []
    for field, value in data.items():
        if not isinstance(value, str) or not (field.endswith("_url") or field.endswith("_dsn")):
            continue
        if isinstance(backend, str) and not field.startswith(backend):
            continue
        try:
            parts = urlsplit(value)
            port = parts.port
        except ValueError:
            continue
        if parts.hostname:
            found.append(f"{name}.{field} → {parts.hostname}:{port or 'default port'}")
    return found


def describe(component: str, exc: BaseException, section: BaseModel | None) -> str:
    """One paragraph: which component, what failed, and the addresses it was configured with."""
    chain = list(_chain(exc))
    what = "; ".join(dict.fromkeys(f"{type(e).__name__}: {e}" for e in reversed(chain) if str(e)))
    what = what or type(exc).__name__
    text = f"{component} cannot start: {what}"
    unreachable = any(
        isinstance(e, (ConnectionError, TimeoutError, OSError))
        or any(w in str(e).lower() for w in _UNREACHABLE_WORDS)
        for e in chain
    )
    addresses = _addresses(section, component) if unreachable else []
    if addresses:
        text += f" (configured: {', '.join(addresses)}; is it running and reachable from here?)"
    return text


class CleanStartupFailure:
    """Replaces the traceback of a failed start-up (``lifespan.startup.failed``) by the paragraph.

    Only lifespan messages are looked at; requests pass straight through."""

    def __init__(self, app: ASGIApp, paragraph: list[str], debug: bool) -> None:
        self.app = app
        self._paragraph = paragraph  # filled by the lifespan when a start fails
        self._debug = debug

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan" or self._debug:
            await self.app(scope, receive, send)
            return

        async def clean_send(message: Message) -> None:
            if message.get("type") == "lifespan.startup.failed" and self._paragraph:
                message = {**message, "message": "wardgate: " + self._paragraph[-1]}
            await send(message)

        await self.app(scope, receive, clean_send)
