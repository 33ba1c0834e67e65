"""Connection hygiene against real slow and oversized clients (raw sockets): silent and
trickling connections are closed after their timeout, idle keep-alive connections expire,
oversized or too many headers get 431 before they are buffered, and every such answer is
OpenAI-shaped JSON followed by a close."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import PASS_THROUGH, TEST_KEY, RunningGateway, gateway_settings, running_gateway
from tests.raw_http import closed_within, connect, head, read_response, send_until_closed
from tests.waiting import wait_until

TIMEOUT_S = 0.5
SERVER = {
    "header_timeout_s": TIMEOUT_S,
    "body_timeout_s": TIMEOUT_S,
    "keepalive_timeout_s": TIMEOUT_S,
    "max_header_bytes": 8192,
    "max_headers": 30,
}
AUTH = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}
CHAT = b'{"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.fixture(scope="module")
def gw(fake_upstream: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("slow")
    settings = gateway_settings(root, fake_upstream.base_url, server=SERVER, **PASS_THROUGH)  # type: ignore[attr-defined]
    with running_gateway(settings) as running:
        yield running


def assert_refused(resp, status: int, code: str) -> None:
    assert resp.status == status, resp.body
    assert resp.headers["content-type"] == "application/json"
    assert resp.headers["connection"] == "close"
    error = resp.json()["error"]
    assert error["code"] == code and error["message"] and "type" in error and "param" in error


def test_a_silent_connection_is_closed_after_the_header_timeout(gw):
    sock = connect(gw.url)
    took = closed_within(sock, 5)
    assert took is not None, "a connection that never sends a byte stays open"
    assert TIMEOUT_S * 0.8 <= took < TIMEOUT_S + 2


def test_headers_trickled_a_byte_at_a_time_get_408_within_the_header_timeout(gw):
    sock = connect(gw.url)
    request = head("POST", "/v1/chat/completions", AUTH, len(CHAT))
    start = time.monotonic()
    sock.settimeout(0.05)
    answer = b""
    for byte in request[:-4]:  # never completes the headers
        try:
            sock.send(bytes([byte]))
            answer = sock.recv(65536)
        except TimeoutError:
            continue
        except (ConnectionResetError, BrokenPipeError):
            break
        if answer:
            break
    took = time.monotonic() - start
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert b'"code":"request_timeout"' in answer
    assert took < TIMEOUT_S + 2, "each byte must not extend the deadline"
    assert closed_within(sock, 5) is not None


def test_a_slow_body_gets_408_and_the_connection_is_closed(gw):
    sock = connect(gw.url)
    sock.sendall(head("POST", "/v1/chat/completions", AUTH, len(CHAT)) + CHAT[:10])
    start = time.monotonic()
    assert_refused(read_response(sock, timeout=5), 408, "request_timeout")
    assert TIMEOUT_S * 0.8 <= time.monotonic() - start < TIMEOUT_S + 2
    assert closed_within(sock, 5) is not None
    # the gateway is fine afterwards
    assert httpx.post(gw.base_url + "/chat/completions", content=CHAT, headers=AUTH).status_code == 200


def test_an_idle_keepalive_connection_is_closed_silently(gw):
    sock = connect(gw.url)
    for _ in range(3):  # keep-alive itself works
        sock.sendall(head("POST", "/v1/chat/completions", AUTH, len(CHAT)) + CHAT)
        assert read_response(sock).status == 200
    took = closed_within(sock, 5)
    assert took is not None and took < TIMEOUT_S + 2


def test_a_header_larger_than_the_limit_is_431_before_it_is_complete(gw):
    sock = connect(gw.url)
    # A header that never ends: refused once more than 8 KiB of it has arrived (not buffered
    # until it ends); what the client still sends is dropped, then the connection closes.
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536)
    assert_refused(read_response(sock), 431, "headers_too_large")
    send_until_closed(sock, b"a" * (1024 * 1024))
    assert closed_within(sock, 5) is not None


def test_a_complete_header_block_over_the_limit_in_one_packet_is_431(gw):
    sock = connect(gw.url)
    sock.sendall(head("GET", "/healthz", {"X-Big": "a" * 9000}))
    assert_refused(read_response(sock), 431, "headers_too_large")


def test_many_small_headers_over_the_count_limit_are_431(gw):
    sock = connect(gw.url)
    sock.sendall(head("GET", "/healthz", {f"X-H{i}": "1" for i in range(40)}))
    resp = read_response(sock)
    assert_refused(resp, 431, "headers_too_large")
    assert "server.max_headers" in resp.json()["error"]["message"]


def test_headers_within_the_limits_pass(gw):
    headers = {**AUTH, **{f"X-H{i}": "v" * 100 for i in range(20)}}
    resp = httpx.post(gw.base_url + "/chat/completions", content=CHAT, headers=headers)
    assert resp.status_code == 200, resp.text


def test_a_malformed_request_line_is_an_openai_shaped_400(gw):
    sock = connect(gw.url)
    sock.sendall(b"GARBAGE\x00 / HTTP/1.1\r\n\r\n")
    assert_refused(read_response(sock), 400, "invalid_http_request")


@pytest.fixture(scope="module")
def capped(fake_upstream: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("capped")
    server = {"max_connections": 4, "max_inflight_requests": 2, "body_timeout_s": 10, "header_timeout_s": 10}
    settings = gateway_settings(root, fake_upstream.base_url, server=server, **PASS_THROUGH)  # type: ignore[attr-defined]
    with running_gateway(settings) as running:
        yield running


def _held_calls(gw: RunningGateway, n: int) -> list:
    """Calls that are in flight: authenticated headers sent, body withheld."""
    socks = []
    for _ in range(n):
        sock = connect(gw.url)
        sock.sendall(head("POST", "/v1/chat/completions", AUTH, len(CHAT)))
        socks.append(sock)
    return socks


def _wait_inflight(gw: RunningGateway, n: int) -> None:
    wait_until(lambda: gw.app.inflight == n, message=f"in flight: {gw.app.inflight}, expected {n}")


def test_calls_beyond_the_inflight_cap_get_503_overloaded_with_retry_after(capped):
    held = _held_calls(capped, 2)
    try:
        _wait_inflight(capped, 2)
        resp = httpx.post(capped.base_url + "/chat/completions", content=CHAT, headers=AUTH)
        assert resp.status_code == 503
        assert resp.headers["retry-after"] == "1"
        assert resp.headers["x-should-retry"] == "true"
        assert resp.json()["error"]["code"] == "overloaded"
        # operators still get through: health and metrics are never shed, and show the shedding
        assert httpx.get(capped.url + "/healthz").status_code == 200
        metrics = httpx.get(capped.url + "/metrics").text
        assert "wardgate_calls_in_flight 2.0" in metrics
        assert 'wardgate_connections_refused_total{reason="inflight"} 1.0' in metrics
    finally:
        for sock in held:
            sock.close()
    _wait_inflight(capped, 0)
    assert httpx.post(capped.base_url + "/chat/completions", content=CHAT, headers=AUTH).status_code == 200


def test_silent_connections_at_the_connection_cap_are_displaced_by_a_real_client(capped):
    silent = [connect(capped.url) for _ in range(4)]
    try:
        time.sleep(0.1)
        for _ in range(3):
            resp = httpx.post(capped.base_url + "/chat/completions", content=CHAT, headers=AUTH)
            assert resp.status_code == 200
        assert sum(closed_within(s, 0.5) is not None for s in silent) >= 1
        assert (
            'wardgate_connections_refused_total{reason="displaced"}'
            in httpx.get(capped.url + "/metrics").text
        )
    finally:
        for sock in silent:
            sock.close()


def test_a_connection_beyond_the_cap_with_none_displaceable_gets_503(capped):
    # four connections that are all mid-request: two in flight, two answered 503 and draining
    busy = _held_calls(capped, 4)
    try:
        _wait_inflight(capped, 2)
        time.sleep(0.1)
        extra = connect(capped.url)
        assert_refused(read_response(extra), 503, "overloaded")
    finally:
        for sock in busy:
            sock.close()
    _wait_inflight(capped, 0)


def test_pipelined_requests_are_all_answered_in_order(gw):
    sock = connect(gw.url)
    one = head("POST", "/v1/chat/completions", {**AUTH, "X-Request-Id": "first"}, len(CHAT)) + CHAT
    two = head("POST", "/v1/chat/completions", {**AUTH, "X-Request-Id": "second"}, len(CHAT)) + CHAT
    sock.sendall(one + two + head("GET", "/healthz"))
    assert [read_response(sock).headers.get("x-request-id") for _ in range(2)] == ["first", "second"]
    assert read_response(sock).status == 200


def test_connection_close_and_http_1_0_requests_are_answered_then_closed(gw):
    for request in (
        head("POST", "/v1/chat/completions", {**AUTH, "Connection": "close"}, len(CHAT)) + CHAT,
        head("POST", "/v1/chat/completions", AUTH, len(CHAT)).replace(b"HTTP/1.1", b"HTTP/1.0", 1) + CHAT,
    ):
        sock = connect(gw.url)
        sock.sendall(request)
        assert read_response(sock).status == 200
        assert closed_within(sock, 2) is not None
