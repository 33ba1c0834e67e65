"""A lean HTTP/1.1 keep-alive client for the MCP relay: one request, its answer's headers, its body.

Why not aiohttp: a ``tools/call`` relayed through an aiohttp ``ClientSession`` cost ~230 µs
of CPU per request on the bench machine, against ~30 µs for the same POST written on a kept
connection and parsed with httptools (the parser uvicorn serves the agent with), and the
relay needs none of what the difference buys (cookies, redirects, proxies, multipart). So the
gateway writes the request head itself, parses the answer with ``httptools`` and hands out the
body as it arrives (JSON or SSE), over connections kept per server.

What it keeps of an HTTP client's duties:
* keep-alive: a connection goes back to the pool only after its answer was read to the end
  and the server did not ask to close it; anything else closes it (never a half-read body
  under the next request);
* at most ``limit`` connections per server (more requests wait for one to come back);
* bodies by ``Content-Length``, ``chunked``, or until close; 1xx answers skipped;
* no compression: ``Accept-Encoding: identity`` is sent and a compressed answer is refused
  (``garbage``), so the size cap counts what the agent gets;
* header names and values with CR, LF or NUL are refused before anything is written
  (no request smuggling through a configured credential or a relayed header);
* flow control: reading pauses while more than ``_HIGH_WATER`` bytes wait to be relayed;
* bounds: an answer's head (1xx answers included) past ``MAX_HEAD_BYTES`` is refused as
  ``garbage`` (httptools buffers a header line whole, and bounds none); the body's cap is
  the relay's (``mcp.max_response_bytes``);
* one answer per request: bytes after an answer (a second answer, whole or begun) close the
  connection, so nothing the server sent early is read as the next request's answer;
* a kept connection idle for ``IDLE_CHECK_S`` or more that is readable (the server closed
  it, or sent junk, before the loop saw it) is closed, not used: the request goes on a fresh
  one. A request is never sent twice (a ``tools/call`` is not idempotent): a connection lost
  after the write fails;
* a body silent for longer than the read timeout fails as ``timeout``, a connection lost
  mid-body as ``unreachable``, a malformed answer as ``garbage`` (``UpstreamFailure``).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import select
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from typing import cast

import httptools
import yarl

from gateway.mcp.h1head import UpstreamFailure as UpstreamFailure
from gateway.mcp.h1head import _head as _head

_HIGH_WATER = 256 * 1024
#: A kept connection idle this long is polled before use: closed (or spoken on) by the server
#: in the meantime, it is dropped. Not sooner: the poll costs a syscall (~2-7 µs a call here),
#: and a server closes a connection this fresh only when it stops (keep-alive timeouts are
#: seconds); then a call racing the close fails as ``unreachable``, never resent.
IDLE_CHECK_S = 0.1
#: An answer's status line and headers, 1xx answers before it included (aiohttp allowed
#: 8,190 bytes a line; 64 KiB is many such lines and still bounds the memory).
MAX_HEAD_BYTES = 64 * 1024


class Body:
    """The answer's body as it arrives (``iter_any`` yields what has come, as aiohttp's did)."""

    def __init__(self, conn: _Conn, read_timeout: float | None) -> None:
        self._conn = conn
        self._chunks: collections.deque[bytes] = collections.deque()
        self._size = 0
        self._waiter: asyncio.Future[None] | None = None
        self._timeout = read_timeout
        self.done = False
        self.error: UpstreamFailure | None = None

    def feed(self, data: bytes) -> None:
        if self.done:
            return  # bytes past the end of the answer (the connection is being failed)
        self._chunks.append(data)
        self._size += len(data)
        if self._size > _HIGH_WATER:
            self._conn.pause()
        self._wake()

    def finish(self, error: UpstreamFailure | None = None) -> None:
        if not self.done:
            self.done = True
            self.error = error
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def iter_any(self) -> AsyncIterator[bytes]:
        while True:
            if self._chunks:
                data = self._chunks.popleft() if len(self._chunks) == 1 else b"".join(self._chunks)
                self._chunks.clear()
                self._size = 0
                self._conn.resume()
                yield data
                continue
            if self.done:
                if self.error is not None:
                    raise self.error
                return
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                if self._timeout is None:
                    await self._waiter
                else:
                    async with asyncio.timeout(self._timeout):
                        await self._waiter
            except TimeoutError:
                raise UpstreamFailure("timeout", f"the answer went silent for {self._timeout:g}s") from None
            finally:
                self._waiter = None


class Response:
    """An upstream answer: status and headers (lower-case names, a repeated one's first value)
    are in; the body is read with ``content.iter_any()``; ``release()`` ends it."""

    __slots__ = ("_conn", "_released", "content", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], content: Body, conn: _Conn) -> None:
        self.status = status
        self.headers = headers
        self.content = content
        self._conn = conn
        self._released = False

    def release(self) -> None:
        """Give the connection back when the body was read to its end, else close it."""
        if not self._released:
            self._released = True
            self._conn.finished(reuse=self.content.done and self.content.error is None)

    def __del__(self) -> None:
        # An answer dropped unreleased (a stream never iterated: the agent left first) must
        # not hold its connection's slot for good.
        if not self._released:
            self._released = True
            with contextlib.suppress(Exception):  # at exit the loop may be closed already
                self._conn.finished(reuse=False)


class _Conn(asyncio.Protocol):
    """One kept-alive connection; one request at a time."""

    def __init__(self, host: _Host) -> None:
        self.host = host
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self._parser = httptools.HttpResponseParser(self)
        self._headers: dict[str, str] = {}
        self._answer: asyncio.Future[Response] | None = None
        self._body: Body | None = None
        self._read_timeout: float | None = None
        self._skip = False  # a 1xx answer is being parsed
        self._keep = False
        self._until_close = False
        self._paused = False
        self._head_size = 0  # bytes read while the answer's head is awaited
        self._poll: select.poll | None = None
        self.idle_since = 0.0  # time.monotonic() when it went back to the pool

    # -- asyncio.Protocol ------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._answer is None and self._body is None:
            self._fail(UpstreamFailure("garbage", "bytes from the server outside an answer"))
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Stop):  # httptools wraps a callback's exception
                return
            self._fail(UpstreamFailure("garbage", "malformed HTTP answer (HttpParserCallbackError)"))
        except httptools.HttpParserUpgrade:
            self._fail(UpstreamFailure("garbage", "the server switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(UpstreamFailure("garbage", f"malformed HTTP answer ({type(exc).__name__})"))
        if self._answer is not None:
            self._head_size += len(data)
            if self._head_size > MAX_HEAD_BYTES:
                self._fail(UpstreamFailure("garbage", f"an answer head larger than {MAX_HEAD_BYTES} bytes"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._body is not None and self._until_close and exc is None:
            self._body.finish()  # a body delimited by the close: complete
        else:
            self._fail(UpstreamFailure("unreachable", "the server closed the connection"))
        self.host.lost(self)

    # -- httptools callbacks ---------------------------------------------------------------
    def on_message_begin(self) -> None:
        if self._answer is None:  # an answer after the answer: never the next request's
            self._fail(UpstreamFailure("garbage", "a second HTTP answer to one request"))
            raise _Stop

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        headers, self._headers = self._headers, {}
        if status < 200:
            self._skip = True
            return
        answer, self._answer = self._answer, None
        if answer is None or answer.done():  # an answer nobody asked for (or a second one)
            self._fail(UpstreamFailure("garbage", "an HTTP answer to no request"))
            return
        if headers.get("content-encoding", "identity").strip().lower() != "identity":
            self._answer = answer
            self._fail(UpstreamFailure("garbage", "a compressed answer (Accept-Encoding: identity was sent)"))
            return
        self._until_close = "content-length" not in headers and "chunked" not in headers.get(
            "transfer-encoding", ""
        )
        self._body = Body(self, self._read_timeout)
        answer.set_result(Response(status, headers, self._body, self))

    def on_body(self, body: bytes) -> None:
        if self._body is not None:
            self._body.feed(body)

    def on_message_complete(self) -> None:
        if self._skip:
            self._skip = False
            return
        self._keep = self._parser.should_keep_alive()
        if self._body is not None:
            self._body.finish()

    # -- the relay's side --------------------------------------------------------------------
    def send(self, head: bytes, body: bytes | None, read_timeout: float | None) -> asyncio.Future[Response]:
        assert self.transport is not None
        self._read_timeout = read_timeout
        self._body = None
        self._keep = False
        self._head_size = 0
        self._answer = answer = asyncio.get_running_loop().create_future()
        self.transport.write(head + body if body else head)
        return answer

    def _fail(self, error: UpstreamFailure) -> None:
        answer, self._answer = self._answer, None
        if answer is not None and not answer.done():
            answer.set_exception(error)
        if self._body is not None:
            self._body.finish(error)
        self.close()

    def pause(self) -> None:
        if not self._paused and self.transport is not None and not self.closed:
            self._paused = True
            self.transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self.transport is not None and not self.closed:
            self._paused = False
            self.transport.resume_reading()

    def finished(self, reuse: bool) -> None:
        """The request is over: keep the connection for the next one, or close it."""
        self._body = None
        if reuse and self._keep and not self.closed:
            self.resume()
            self.idle_since = time.monotonic()
            self.host.idle(self)
        else:
            self.close()
            self.host.done(self)

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.closed = True
            self.transport.close()

    def readable(self) -> bool:
        """Whether the socket has something to read (an EOF, a reset, bytes) that the loop has
        not handled yet: on an idle connection, that is never the start of a good answer."""
        poll = self._poll
        if poll is None:  # made once per connection (~2 µs a poll, ~4 µs with a new object)
            sock = self.transport.get_extra_info("socket") if self.transport is not None else None
            if sock is None:
                return True
            poll = self._poll = select.poll()
            poll.register(sock.fileno(), select.POLLIN | select.POLLPRI)
        return bool(poll.poll(0))


class _Stop(Exception):
    """Stops httptools mid-read: the connection was failed, the rest of the read is not parsed."""


class _Host:
    """The connections to one server (scheme, host, port): idle ones, and a cap on all."""

    def __init__(self, url: yarl.URL, limit: int) -> None:
        self.url = url
        self.limit = asyncio.Semaphore(limit)
        self._idle: list[_Conn] = []
        self._held: set[_Conn] = set()  # connections that hold a slot of ``limit``
        self._context: ssl.SSLContext | None = None

    async def connection(self) -> _Conn:
        await self.limit.acquire()
        try:
            while self._idle:
                conn = self._idle.pop()
                if conn.closed:
                    continue
                if time.monotonic() - conn.idle_since >= IDLE_CHECK_S and conn.readable():
                    conn.close()
                    continue
                self._held.add(conn)
                return conn
            loop = asyncio.get_running_loop()
            tls = self._tls()
            _, conn = await loop.create_connection(
                lambda: _Conn(self), self.url.raw_host or "", self.url.port or 0, ssl=tls
            )
        except BaseException:
            self.limit.release()
            raise
        self._held.add(conn)
        return conn

    def _tls(self) -> ssl.SSLContext | None:
        """One verifying TLS context per https server (loading the CA store costs milliseconds)."""
        if self.url.scheme != "https":
            return None
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context

    def idle(self, conn: _Conn) -> None:
        self._release(conn)
        self._idle.append(conn)

    def done(self, conn: _Conn) -> None:
        self._release(conn)

    def lost(self, conn: _Conn) -> None:
        """A connection closed (by either side): out of the idle list; its slot is given back
        when its request is released (``done``)."""
        if conn in self._idle:
            self._idle.remove(conn)

    def _release(self, conn: _Conn) -> None:
        if conn in self._held:
            self._held.discard(conn)
            self.limit.release()

    def close(self) -> None:
        for conn in [*self._idle, *self._held]:
            conn.close()
        self._idle.clear()


class Client:
    """Connections kept per server; ``request`` sends one request and returns its answer's head."""

    def __init__(self, limit_per_host: int) -> None:
        self._limit = limit_per_host
        self._hosts: dict[tuple[str, str, int | None], _Host] = {}

    async def request(
        self,
        method: str,
        url: yarl.URL,
        headers: Mapping[str, str],
        body: bytes | None,
        read_timeout: float | None,
    ) -> Response:
        """Raises ``UpstreamFailure`` (or ``OSError`` from the connect: the caller's to map)."""
        key = (url.scheme, url.raw_host or "", url.port)
        host = self._hosts.get(key)
        if host is None:
            host = self._hosts[key] = _Host(url, self._limit)
        head = _head(method, url, headers, body)
        conn = await host.connection()
        try:
            return await conn.send(head, body, read_timeout)
        except BaseException:
            conn.finished(reuse=False)  # cancelled (timeout) or failed: never reused half-way
            raise

    def close(self) -> None:
        for host in self._hosts.values():
            host.close()
        self._hosts.clear()
