"""Header, body and idle timeouts fire within ~0.1 s of their setting, not up to 0.5 s late.

Deadlines are checked by one sweep per worker; the sweep ran every 0.5 s with timeouts of
2 s and more (every default), so a timeout fired anywhere up to half a second late. Raw
sockets, each kind staggered over a sweep period (so some land just after a sweep): the
latest of them must still fire within 0.2 s (0.1 s granularity plus the event loop's lag on
a shared machine), and none early.
"""

from __future__ import annotations

import selectors
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import PASS_THROUGH, TEST_KEY, RunningGateway, gateway_settings, running_gateway
from tests.raw_http import connect, head, read_response

HEADER_S, BODY_S, IDLE_S = 2.0, 2.2, 2.4
SLACK_S = 0.2
AUTH = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}
CHAT = b'{"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.fixture(scope="module")
def gw(fake_upstream: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("ontime")
    server = {"header_timeout_s": HEADER_S, "body_timeout_s": BODY_S, "keepalive_timeout_s": IDLE_S}
    settings = gateway_settings(root, fake_upstream.base_url, server=server, **PASS_THROUGH)  # type: ignore[attr-defined]
    with running_gateway(settings) as running:
        yield running


def _first_reaction(socks: dict[socket.socket, float], timeout: float) -> list[float]:
    """Per socket, seconds from its start to the server's first reaction (an answer or a close)."""
    sel = selectors.DefaultSelector()
    for sock in socks:
        sock.setblocking(False)
        sel.register(sock, selectors.EVENT_READ)
    took: dict[socket.socket, float] = {}
    deadline = time.monotonic() + timeout
    while len(took) < len(socks) and time.monotonic() < deadline:
        for key, _ in sel.select(timeout=0.01):
            now = time.monotonic()
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            took[sock] = now - socks[sock]
            sel.unregister(sock)
    sel.close()
    assert len(took) == len(socks), "a connection outlived its timeout by seconds"
    return [took[s] for s in socks]


def _staggered(
    gw: RunningGateway, start: Callable[[socket.socket], None], n: int = 6
) -> dict[socket.socket, float]:
    """``n`` connections, each put in the state under test at a different point of a 0.5 s
    period (a sweep period before the fix); value: when its timeout starts counting."""
    out: dict[socket.socket, float] = {}
    for _ in range(n):
        sock = connect(gw.url)
        start(sock)
        out[sock] = time.monotonic()
        time.sleep(0.5 / n + 0.013)
    return out


def _check(took: list[float], setting: float) -> None:
    late = [round(t - setting, 3) for t in took]
    assert min(late) >= -0.05, f"fired early: {late}"
    assert max(late) < SLACK_S, f"fired late (s past {setting}): {late}"


def test_the_header_timeout_fires_on_time(gw: RunningGateway) -> None:
    took = _first_reaction(_staggered(gw, lambda s: s.sendall(b"POST /v1/chat/completions HTTP/1.1\r\n")), 10)
    _check(took, HEADER_S)


def test_the_body_timeout_fires_on_time(gw: RunningGateway) -> None:
    def slow_body(sock: socket.socket) -> None:
        sock.sendall(head("POST", "/v1/chat/completions", AUTH, len(CHAT)) + CHAT[:10])

    _check(_first_reaction(_staggered(gw, slow_body), 10), BODY_S)


def test_the_idle_keep_alive_timeout_fires_on_time(gw: RunningGateway) -> None:
    def one_request(sock: socket.socket) -> None:
        sock.sendall(head("GET", "/healthz"))
        assert read_response(sock).status == 200

    _check(_first_reaction(_staggered(gw, one_request), 10), IDLE_S)
