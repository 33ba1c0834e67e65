"""The MCP relay's HTTP/1.1 client (gateway/mcp/h1.py) against a hostile or broken server.

What a library client bounds and refuses, this one must too: a head of megabytes, a chunk
size that is not one, a second answer behind the first (never handed to the next request on
that connection), a body cut short, a server gone while the connection sat idle (the next
call opens a fresh one, and no request is ever sent twice), and a pool that gives every slot
back whatever happened to the call. Each scenario runs on asyncio's loop and on uvloop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop
import yarl

from gateway.mcp import h1
from gateway.mcp.h1 import Client
from gateway.mcp.relay import relay
from gateway.mcp.upstream import UpstreamFailure
from tests.mcp.test_mcp_h1 import Script, _json, _post, _read


async def _failure(call: Awaitable[Any]) -> UpstreamFailure:
    with pytest.raises(UpstreamFailure) as failure:
        await call
    return failure.value


async def _body_failure(client: Client, url: yarl.URL, body: bytes) -> UpstreamFailure:
    """The failure of a request whose head came in and whose body does not parse."""
    resp = await _post(client, url, body)
    try:
        return await _failure(_read(resp))
    finally:
        resp.release()  # as the relay does, whatever happened


def _hosts(client: Client) -> list[Any]:
    return list(client._hosts.values())


def _all_free(client: Client, limit: int) -> bool:
    return all(not host._held and host.limit._value == limit for host in _hosts(client))


async def huge_heads_are_refused() -> None:
    async def answer(request: bytes) -> list[bytes | float]:
        if b"line" in request:  # one header line of 4 MB
            return [b"HTTP/1.1 200 OK\r\nx-big: " + b"a" * (4 << 20) + b"\r\ncontent-length: 2\r\n\r\n{}"]
        if b"many" in request:  # 200,000 small header lines
            return [b"HTTP/1.1 200 OK\r\n" + b"x-n: v\r\n" * 200_000 + b"content-length: 2\r\n\r\n{}"]
        return [b"HTTP/1.1 100 Continue\r\n\r\n" * 50_000 + _json(b"{}")]  # endless 1xx

    async with Script(answer) as script_:
        client = Client(4)
        for body in (b'"line"', b'"many"', b'"1xx"'):
            failure = await _failure(_post(client, script_.url, body))
            assert failure.kind == "garbage" and "head" in failure.detail, failure.detail
        assert _all_free(client, 4)
        client.close()


async def bad_chunks_are_garbage() -> None:
    sizes = {b'"big"': b"ffffffffffffffffffff", b'"neg"': b"-1", b'"junk"': b"zz", b'"empty"': b""}

    async def answer(request: bytes) -> list[bytes | float]:
        head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
        size = sizes.get(request[request.index(b"\r\n\r\n") + 4 :], b"2")
        return [head + size + b"\r\n{}\r\n0\r\n\r\n"]

    async with Script(answer) as script_:
        client = Client(4)
        for body in sizes:
            assert (await _body_failure(client, script_.url, body)).kind == "garbage", body
        both = (
            b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n"
        )
        script_.answer = _steps([both])
        assert (await _failure(_post(client, script_.url))).kind == "garbage"  # CL with TE: smuggling
        client.close()


def _steps(steps: list[bytes | float]) -> Callable[[bytes], Awaitable[list[bytes | float]]]:
    async def answer(request: bytes) -> list[bytes | float]:
        return list(steps)

    return answer


async def a_second_answer_is_never_the_next_ones() -> None:
    """Bytes after an answer, whole or the start of one, close the connection: the next
    request (another agent's, maybe) gets its own server's answer on a fresh connection."""
    tails = [
        _json(b'{"smuggled":1}'),  # a whole second answer in the same read
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 14\r\n",  # its start
        b"HTTP/1.1 200 OK\r\n",
    ]
    for tail in tails:

        async def answer(request: bytes, tail: bytes = tail) -> list[bytes | float]:
            n = len(script_.requests)
            return [_json(b'{"n":%d}' % n) + tail] if n == 1 else [_json(b'{"n":%d}' % n)]

        async with Script(answer) as script_:
            client = Client(4)
            assert await _read(await _post(client, script_.url)) == b'{"n":1}'
            await asyncio.sleep(0.05)
            assert await _read(await _post(client, script_.url)) == b'{"n":2}'
            assert script_.connections == 2  # the first connection was not reused
            client.close()

    async def late(request: bytes) -> list[bytes | float]:  # the second answer comes later
        n = len(script_.requests)
        return [_json(b'{"n":%d}' % n), 0.05, _json(b'{"smuggled":1}')] if n == 1 else [_json(b'{"n":2}')]

    async with Script(late) as script_:
        client = Client(4)
        assert await _read(await _post(client, script_.url)) == b'{"n":1}'
        await asyncio.sleep(0.15)
        assert await _read(await _post(client, script_.url)) == b'{"n":2}'
        client.close()


async def cut_answers_fail_clean() -> None:
    async def answer(request: bytes) -> list[bytes | float]:
        if b"short" in request:  # a Content-Length larger than what is sent, then close
            return [b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\nconnection: close\r\n\r\n{}"]
        return [b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-len"]  # closed mid-headers

    async with Script(answer) as script_:
        client = Client(4)
        assert (await _body_failure(client, script_.url, b'"short"')).kind == "unreachable"
        assert (await _failure(_post(client, script_.url, b'"head"'))).kind == "unreachable"
        assert _all_free(client, 4)
        client.close()


class ClosingServer:
    """A blocking server in a thread: one answer per connection (kept alive, as far as the
    client knows), then the connection is closed after ``idle_s`` (a keep-alive timeout)."""

    def __init__(self, idle_s: float) -> None:
        self.idle_s = idle_s
        self.connections = 0
        self.requests = 0
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.url = yarl.URL(f"http://127.0.0.1:{self._sock.getsockname()[1]}/mcp")
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, _ = self._sock.accept()
                self.connections += 1
                with conn:
                    data = b""
                    while b"\r\n\r\n" not in data or not data.endswith(b"{}"):
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                    if data:
                        self.requests += 1
                        conn.sendall(_json(b'{"n":%d}' % self.requests))
                        time.sleep(self.idle_s)

    def close(self) -> None:
        self._sock.close()


async def an_idle_connection_the_server_closed() -> None:
    """A kept connection the server closed while idle is not used for the next call, even
    when the loop has not read the close yet (it was busy): the call goes on a fresh
    connection, and no request reaches the server twice."""
    server = ClosingServer(0.05)
    client = Client(4)
    try:
        assert await _read(await _post(client, server.url)) == b'{"n":1}'
        await asyncio.sleep(0.2)  # the loop reads the close: the connection leaves the pool
        assert await _read(await _post(client, server.url)) == b'{"n":2}'
        time.sleep(0.2)  # noqa: ASYNC251 -- the close reaches the kernel while the loop is busy
        assert await _read(await _post(client, server.url)) == b'{"n":3}'
        assert server.connections == 3 and server.requests == 3
    finally:
        client.close()
        server.close()


async def the_pool_gives_every_slot_back() -> None:
    busy = 0
    peak = 0

    async def answer(request: bytes) -> list[bytes | float]:
        nonlocal busy, peak
        kind = request[request.index(b"\r\n\r\n") + 4 :]
        if kind == b'"slow"':
            busy += 1
            peak = max(peak, busy)
            await asyncio.sleep(0.01)
            busy -= 1
            return [_json(b"{}")]
        if kind == b'"cut"':
            return [b"HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 10\r\n\r\n{"]
        if kind == b'"junk"':
            return [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}junk"]
        if kind == b'"silent"':
            return [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n", 1.0]
        return [_json(b"{}")]

    async with Script(answer) as script_:
        client = Client(3)
        # a crowd: never more than 3 connections at once
        results = await asyncio.gather(
            *(_call(client, script_.url, b'"slow"') for _ in range(30)), return_exceptions=True
        )
        assert all(r == b"{}" for r in results) and peak <= 3 and script_.connections <= 3
        # cancelled mid-call (the agent left): the slot comes back
        for _ in range(5):
            task = asyncio.ensure_future(_call(client, script_.url, b'"silent"', read_s=5.0))
            await asyncio.sleep(0.02)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        assert _all_free(client, 3)
        # 1,000 calls with faults: no slot, no connection leaks
        kinds = [b'"ok"', b'"cut"', b'"junk"', b'"ok"']
        for i in range(1000):
            try:
                await _call(client, script_.url, kinds[i % 4], read_s=1.0)
            except UpstreamFailure:
                pass
        assert _all_free(client, 3)
        assert sum(len(host._idle) for host in _hosts(client)) <= 3
        client.close()


async def _call(client: Client, url: yarl.URL, body: bytes, read_s: float = 2.0) -> bytes:
    resp = await _post(client, url, body, read_s)
    try:
        return await _read(resp)
    finally:
        resp.release()


async def endless_bodies_stop_at_the_cap() -> None:
    """A body that never ends (chunked JSON, or one SSE event that never closes) on a call
    stops at the relay's size cap (``mcp.max_response_bytes``) as ``garbage``; its connection
    is closed, its slot given back."""
    chunk = b"%x\r\n%s\r\n" % (8192, b"a" * 8192)
    head = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: "

    async def answer(request: bytes) -> list[bytes | float]:
        ctype = b"text/event-stream" if b"sse" in request else b"application/json"
        first = b"%x\r\ndata: \r\n" % 6 if b"sse" in request else b""
        return [head + ctype + b"\r\n\r\n" + first, *([chunk] * 1000)]  # 8 MB, never a last chunk

    ended: list[str | None] = []

    def failure(exc: UpstreamFailure) -> dict[str, Any]:
        return {"error": exc.kind}

    async with Script(answer) as script_:
        client = Client(2)
        with pytest.raises(UpstreamFailure, match="larger than 262144"):
            await relay(
                await _post(client, script_.url, b'"json"'), 1, None, failure, ended.append, 256 * 1024, {}
            )
        out = await relay(
            await _post(client, script_.url, b'"sse"'), 1, None, failure, ended.append, 256 * 1024, {}
        )
        assert out.stream is not None
        events = [event async for event in out.stream]
        assert events == [b'data: {"error":"garbage"}\n\n'] and ended == ["garbage"]
        assert _all_free(client, 2) and not any(host._idle for host in _hosts(client))
        client.close()


SCENARIOS = [
    huge_heads_are_refused,
    bad_chunks_are_garbage,
    a_second_answer_is_never_the_next_ones,
    cut_answers_fail_clean,
    an_idle_connection_the_server_closed,
    the_pool_gives_every_slot_back,
    endless_bodies_stop_at_the_cap,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_h1_hostile(scenario: Callable[[], Awaitable[None]], loop: str) -> None:
    run: Any = uvloop.run if loop == "uvloop" else asyncio.run
    run(scenario())


def test_the_head_limit_is_generous() -> None:
    assert 32 * 1024 <= h1.MAX_HEAD_BYTES <= 1024 * 1024
