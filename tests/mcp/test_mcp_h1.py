"""The MCP relay's HTTP/1.1 client (gateway/mcp/h1.py) against a scripted raw-socket server.

Each scenario runs on asyncio's loop and on uvloop (the gateway serves on uvloop, the other
tests on asyncio). The server counts connections and records the requests it read, so reuse,
closing and "nothing was sent" are observed on the wire.
"""

from __future__ import annotations

import asyncio
import gc
import gzip
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
import uvloop
import yarl

from gateway.mcp.h1 import Client, Response, _head
from gateway.mcp.upstream import UpstreamFailure

Answer = Callable[[bytes], Awaitable[list[bytes | float]]]  # bytes to write, or seconds to sleep


class Script:
    """A server that reads one request head (+ Content-Length body) at a time and answers it."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.url = yarl.URL()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Script:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = yarl.URL(f"http://127.0.0.1:{port}/mcp")
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                steps = await self.answer(request)
                for step in steps:
                    if isinstance(step, float):
                        await writer.drain()
                        await asyncio.sleep(step)
                    else:
                        writer.write(step)
                await writer.drain()
                if any(isinstance(step, bytes) and b"connection: close" in step for step in steps):
                    return  # the answer is delimited by the close
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def _json(body: bytes, extra: bytes = b"") -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
        + extra
        + b"content-length: "
        + str(len(body)).encode()
        + b"\r\n\r\n"
        + body
    )


async def _read(resp: Response) -> bytes:
    chunks = [chunk async for chunk in resp.content.iter_any()]
    resp.release()
    return b"".join(chunks)


async def _post(client: Client, url: yarl.URL, body: bytes = b"{}", read_s: float | None = 2.0) -> Response:
    return await client.request("POST", url, {"content-type": "application/json"}, body, read_s)


async def keep_alive_and_a_half_read_body() -> None:
    async def answer(request: bytes) -> list[bytes | float]:
        n = len(script_.requests)
        whole = _json(b'{"n":%d,"pad":"%s"}' % (n, b"x" * 1000))
        return [whole[:-500], 0.2, whole[-500:]] if n == 3 else [whole]

    async with Script(answer) as script_:
        client = Client(4)
        assert b'"n":1' in await _read(await _post(client, script_.url))
        assert b'"n":2' in await _read(await _post(client, script_.url))
        assert script_.connections == 1  # kept alive
        half = await _post(client, script_.url)
        half.release()  # not read to the end: closed, never under the next request
        assert b'"n":4' in await _read(await _post(client, script_.url))
        assert script_.connections == 2
        request = script_.requests[0]
        assert b"accept-encoding: identity" in request and b"host: 127.0.0.1:" in request
        client.close()


async def chunked_until_close_and_1xx() -> None:
    async def answer(request: bytes) -> list[bytes | float]:
        if b"chunked" in request:
            head = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
            return [head, b'5\r\n{"a":\r\n', 0.05, b"3\r\n1}\n\r\n0\r\n\r\n"]
        if b"close" in request:
            return [b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n\r\n{"b":2}']
        return [b"HTTP/1.1 100 Continue\r\n\r\n", _json(b'{"c":3}')]

    async with Script(answer) as script_:
        client = Client(4)
        assert await _read(await _post(client, script_.url, b'"chunked"')) == b'{"a":1}\n'
        assert await _read(await _post(client, script_.url, b'"close"')) == b'{"b":2}'
        resp = await _post(client, script_.url, b'"1xx"')
        assert resp.status == 200 and await _read(resp) == b'{"c":3}'
        assert script_.connections == 2  # the answer that closed was not reused
        client.close()


async def refusals() -> None:
    async def answer(request: bytes) -> list[bytes | float]:
        if b"gzip" in request:
            return [_json(gzip.compress(b"{}"), b"content-encoding: gzip\r\n")]
        if b"silent" in request:
            return [b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 10\r\n\r\n{", 5.0]
        return [b"not http at all\r\n\r\n"]

    async with Script(answer) as script_:
        client = Client(4)
        with pytest.raises(UpstreamFailure) as failure:
            await _post(client, script_.url, b'"gzip"')
        assert failure.value.kind == "garbage"
        with pytest.raises(UpstreamFailure) as failure:
            await _post(client, script_.url, b'"junk"')
        assert failure.value.kind == "garbage"
        resp = await _post(client, script_.url, b'"silent"', read_s=0.2)
        with pytest.raises(UpstreamFailure) as failure:
            await _read(resp)
        assert failure.value.kind == "timeout"
        sent = len(script_.requests)
        for name, value in (("x-auth", "a\r\nx-injected: 1"), ("x-auth\n", "a"), ("x-auth", "nul\x00")):
            with pytest.raises(UpstreamFailure, match="CR, LF or NUL"):
                await client.request("POST", script_.url, {name: value}, b"{}", 1.0)
        assert len(script_.requests) == sent  # nothing was written
        client.close()

    async def cut(request: bytes) -> list[bytes | float]:
        return [b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{"]

    async with Script(cut) as script_:
        client = Client(4)
        resp = await _post(client, script_.url)
        assert script_._server is not None
        script_._server.close()
        await asyncio.sleep(0)
        for task in [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]:
            task.cancel()  # the server's connection handler: the connection is lost mid-body
        with pytest.raises(UpstreamFailure) as failure:
            await _read(resp)
        assert failure.value.kind == "unreachable"
        client.close()


async def the_connection_cap() -> None:
    async def answer(request: bytes) -> list[bytes | float]:
        return [_json(b"{}")]

    async with Script(answer) as script_:
        client = Client(1)
        held = await _post(client, script_.url)
        second = asyncio.ensure_future(_post(client, script_.url))
        await asyncio.sleep(0.05)
        assert not second.done()  # waits for the one connection
        await _read(held)
        await _read(await second)
        dropped: Any = await _post(client, script_.url)
        del dropped  # an answer never released (a stream the agent left) frees its slot
        gc.collect()
        await asyncio.wait_for(_read(await _post(client, script_.url)), 1.0)
        client.close()


def test_the_request_head() -> None:
    head = _head("POST", yarl.URL("http://[::1]:8080/mcp?x=1"), {"mcp-session-id": "s1"}, b"{}")
    assert head.startswith(b"POST /mcp?x=1 HTTP/1.1\r\nhost: [::1]:8080\r\n")
    assert head.endswith(b"mcp-session-id: s1\r\ncontent-length: 2\r\n\r\n")
    assert b"host: example.com\r\n" in _head("GET", yarl.URL("https://example.com/mcp"), {}, None)
    with pytest.raises(UpstreamFailure, match="Latin-1"):
        _head("POST", yarl.URL("http://h/mcp"), {"x-auth": "\u2603"}, b"")


SCENARIOS = [keep_alive_and_a_half_read_body, chunked_until_close_and_1xx, refusals, the_connection_cap]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_h1_client(scenario: Callable[[], Awaitable[None]], loop: str) -> None:
    run: Any = uvloop.run if loop == "uvloop" else asyncio.run
    run(scenario())
