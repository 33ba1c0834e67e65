"""The lean OPA client (``engines/opa_wire.py``) against a real socket server that frames its
answers every way HTTP/1.1 allows: Content-Length, chunked (split across writes), a
``Connection: close`` answer, and an idle connection the server dropped (the next request goes
out again on a fresh connection). The decisions themselves are compared with the other engines
in test_policy_decisions.py (``opa-wire``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.policy.engines.opa_wire import WireClient, WireError

ANSWERS = {
    b"/length": [b'HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\n{"result":1}\n'],
    b"/chunked": [
        b'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\n{"resu',
        b'lt"\r\n5\r\n:2}\r\n\r\n0\r\n\r\n',
    ],
    b"/close": [b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}"],
    b"/drop": [],  # the server closes the connection without answering
    b"/garbage": [b"SMTP ready\r\n\r\n"],
    b"/health": [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"],
}


class _Server(asyncio.Protocol):
    connections = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        _Server.connections += 1
        self.transport = transport
        self.buf = b""

    def data_received(self, data: bytes) -> None:
        self.buf += data
        head, sep, rest = self.buf.partition(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]) if sep else -1
        if not sep or len(rest) < length:
            return
        self.buf = rest[length:]
        path = head.split(b" ")[1]
        parts = ANSWERS[path]
        if not parts:
            self.transport.close()
        for part in parts:
            self.transport.write(part)  # type: ignore[attr-defined]
        if path == b"/close":
            self.transport.close()


@pytest.fixture
async def url() -> AsyncIterator[str]:
    server = await asyncio.get_running_loop().create_server(_Server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.close()


async def test_every_framing_is_read_and_connections_are_reused(url: str) -> None:
    client = WireClient(url)
    before = _Server.connections
    assert await client.post("/length", b"{}") == (200, b'{"result":1}\n')
    assert await client.post("/chunked", b"{}") == (200, b'{"result":2}\r\n')
    assert await client.post("/length", b"{}") == (200, b'{"result":1}\n')
    assert _Server.connections - before == 1  # one keep-alive connection for all three
    assert await client.post("/close", b"{}") == (200, b"{}")
    assert await client.post("/length", b"{}") == (200, b'{"result":1}\n')
    assert _Server.connections - before == 2  # a new one after "Connection: close"
    assert await client.get("/health") == (200, b"{}")  # the health check, same connection
    assert _Server.connections - before == 2
    client.close()


async def test_a_dropped_connection_fails_as_unreachable_and_garbage_is_refused(url: str) -> None:
    client = WireClient(url)
    with pytest.raises(WireError):
        await client.post("/drop", b"{}")
    with pytest.raises(WireError):
        await client.post("/garbage", b"{}")
    assert await client.post("/length", b"{}") == (200, b'{"result":1}\n')
    client.close()


async def test_an_idle_connection_the_server_closed_is_replaced(url: str) -> None:
    client = WireClient(url)
    assert (await client.post("/length", b"{}"))[0] == 200
    for conn in client._idle:  # the server's idle timeout, as seen from here
        assert conn.transport is not None
        conn.transport.abort()
    await asyncio.sleep(0.05)
    assert await client.post("/length", b"{}") == (200, b'{"result":1}\n')
    client.close()


def test_https_is_not_spoken() -> None:
    with pytest.raises(ValueError, match="plain http"):
        WireClient("https://opa.example:8181")
