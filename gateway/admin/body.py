"""Admin request bodies, size-checked while they are read.

Starlette's ``request.body()`` reads the whole body before anyone can look at its size (a
30 MB POST cost 117 MB of memory before a 64 KB check refused it). Admin bodies are small
JSON documents, so every admin route reads through here: a declared ``Content-Length`` over
the limit is refused before a byte is read, a chunked body as soon as it passes the limit;
the HTTP protocol then drains or drops the rest.
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.errors import PayloadTooLarge

#: Every admin body (keys, budgets, limits, approval comments) is at most this many bytes.
ADMIN_MAX_BODY = 64 * 1024


async def read_admin_body(request: Request, limit: int = ADMIN_MAX_BODY) -> bytes:
    """The body, or 413 ``payload_too_large`` once it is known to exceed ``limit``."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"Admin request bodies are limited to {limit} bytes.")
