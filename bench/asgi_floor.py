"""What the bench's floor apps share: the ASGI lifespan that opens and closes their one upstream
client, and reading a request body. A floor is the least a proxy hop can do, so each floor app
(``minimal_passthrough.py``, ``mcp_floor.py``) is a bare ASGI callable on these two helpers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any


async def lifespan(
    receive: Any, send: Any, start: Callable[[], None], stop: Callable[[], Awaitable[None]]
) -> None:
    """Serve the lifespan protocol: ``start()`` opens the app's client, ``stop()`` closes it."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            start()
            await send({"type": "lifespan.startup.complete"})
        else:
            await stop()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def read_body(receive: Any) -> bytes:
    """The request's whole body."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body
