"""The ceiling: the smallest Python pass-through (uvicorn + uvloop + httptools, one pooled
aiohttp session, orjson, no guards), measured beside the gateway so its overhead is read
against what this machine allows at all. Served by ``bench/overhead.py``."""

from __future__ import annotations

import os
from typing import Any

import aiohttp
import orjson

from bench.asgi_floor import lifespan, read_body

_UPSTREAM = os.environ.get("MINIMAL_UPSTREAM", "http://127.0.0.1:9/v1")
_STATE: dict[str, Any] = {}
_HEADERS = {"content-type": "application/json", "authorization": "Bearer sk-bench"}


def _open() -> None:
    _STATE["session"] = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=256))


async def _close() -> None:
    await _STATE["session"].close()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send, _open, _close)
        return
    body = await read_body(receive)
    request = orjson.loads(body)
    stream = bool(request.get("stream"))
    async with _STATE["session"].post(
        _UPSTREAM + "/chat/completions", data=orjson.dumps(request), headers=_HEADERS
    ) as resp:
        ctype = b"text/event-stream" if stream else b"application/json"
        if not stream:
            out = await resp.read()
            orjson.loads(out)
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", ctype), (b"content-length", str(len(out)).encode())],
                }
            )
            await send({"type": "http.response.body", "body": out})
            return
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", ctype)]})
        async for chunk in resp.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
