"""The lean OPA client of the hot path (``policy.opa_client: wire``): HTTP/1.1 POSTs on a pool
of keep-alive connections, nothing else.

Why: a decision is one small POST and one small JSON answer, twice per call (request and
response phase). Through aiohttp's ``ClientSession`` (or opa-python-client on top of it) the
client's own machinery (request and response objects, header multidicts, timers, the
connector's bookkeeping) was most of the CPU a decision cost the gateway: measured with
``bench/policy.py --opa-client`` against a server that answers at once. Here a request is one
prebuilt head plus the body, written on an idle connection; the answer is framed by
``Content-Length`` or chunked encoding and handed back as bytes. Plain ``http://`` only (an
``https://`` OPA uses the ``aiohttp`` client).

A connection the server closed is dropped from the pool; a request that fails on a reused
connection before any answer arrived is sent once more on a fresh one (a decision query is a
read: sending it twice is harmless). A request cancelled by the caller's deadline closes its
connection (its answer may still arrive, it must not be read by the next request).
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


class WireError(ConnectionError):
    """The connection failed or the answer is not HTTP/1.1 we understand."""


class _Connection(asyncio.Protocol):
    __slots__ = ("_buf", "_waiter", "closed", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(WireError(f"connection closed: {exc or 'by the server'}"))

    def data_received(self, data: bytes) -> None:
        self._buf += data
        waiter = self._waiter
        if waiter is None or waiter.done():
            return
        try:
            answer = _parse(self._buf)
        except (WireError, ValueError) as exc:  # ValueError: a number that is not one
            waiter.set_exception(exc if isinstance(exc, WireError) else WireError(f"malformed answer: {exc}"))
            self.close()
            return
        if answer is not None:
            self._buf.clear()
            waiter.set_result(answer)

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bytes, bool]]:
        assert self.transport is not None
        waiter: asyncio.Future[tuple[int, bytes, bool]] = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        self.transport.write(request)
        return waiter

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


def _parse(buf: bytearray) -> tuple[int, bytes, bool] | None:
    """``(status, body, keep_alive)`` once ``buf`` holds a whole answer, else ``None``."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = bytes(buf[:end]).split(b"\r\n")
    status_line = head[0].split(b" ", 2)
    if len(status_line) < 2 or not status_line[0].startswith(b"HTTP/1."):
        raise WireError(f"not an HTTP/1.x answer: {head[0][:80]!r}")
    status = int(status_line[1])
    length = -1
    chunked = False
    keep = status_line[0] == b"HTTP/1.1"
    for line in head[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = value.strip().lower() != b"close"
    start = end + 4
    if chunked:
        body = _dechunk(buf, start)
        return None if body is None else (status, body, keep)
    if length < 0:
        raise WireError("an answer without Content-Length or chunked encoding")
    if len(buf) - start < length:
        return None
    return status, bytes(buf[start : start + length]), keep


def _dechunk(buf: bytearray, at: int) -> bytes | None:
    parts: list[bytes] = []
    while True:
        line_end = buf.find(b"\r\n", at)
        if line_end < 0:
            return None
        size = int(bytes(buf[at:line_end]).split(b";", 1)[0], 16)
        at = line_end + 2
        if size == 0:  # no trailers from OPA: the final CRLF ends the answer
            return b"".join(parts) if len(buf) >= at + 2 else None
        if len(buf) < at + size + 2:
            return None
        parts.append(bytes(buf[at : at + size]))
        at += size + 2


class WireClient:
    """POSTs to one ``http://host:port`` on at most ``pool_size`` idle keep-alive connections."""

    def __init__(self, url: str, pool_size: int = 64) -> None:
        parts = urlsplit(url)
        if parts.scheme != "http":
            raise ValueError(f"the wire OPA client speaks plain http:// only, not {parts.scheme}://")
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.base = parts.path.rstrip("/")
        self.pool_size = pool_size
        self._host_header = f"{self.host}:{self.port}".encode()
        self._idle: list[_Connection] = []

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Connection, self.host, self.port)
        return conn

    def _head(self, path: str, length: int, method: bytes = b"POST") -> bytes:
        return (
            method + b" " + (self.base + path).encode() + b" HTTP/1.1\r\nHost: " + self._host_header
            + b"\r\nContent-Type: application/json\r\nContent-Length: " + str(length).encode() + b"\r\n\r\n"
        )  # fmt: skip

    async def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """``(status, body)`` of ``POST path``; raises ``OSError`` (``WireError``) when unreachable."""
        return await self._request(self._head(path, len(body)) + body)

    async def get(self, path: str) -> tuple[int, bytes]:
        """``(status, body)`` of ``GET path`` (the health check, on the same pooled connections)."""
        return await self._request(self._head(path, 0, b"GET"))

    async def _request(self, request: bytes) -> tuple[int, bytes]:
        idle = self._idle
        while idle:
            conn = idle.pop()
            if conn.closed:
                continue
            try:
                return await self._exchange(conn, request)
            except WireError:
                break  # a reused connection the server had closed: once more on a fresh one
        return await self._exchange(await self._connect(), request)

    async def _exchange(self, conn: _Connection, request: bytes) -> tuple[int, bytes]:
        try:
            status, body, keep = await conn.send(request)
        except BaseException:
            conn.close()
            raise
        if keep and not conn.closed and len(self._idle) < self.pool_size:
            self._idle.append(conn)
        else:
            conn.close()
        return status, body

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
