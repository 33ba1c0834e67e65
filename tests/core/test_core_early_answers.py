"""Answers given before the body is read: an unknown caller gets 401 without its body being
read or parsed, a body over the limit gets 413, and every common client reads that answer
(urllib included, which sends ``Connection: close`` and reads only after sending it all)
instead of a connection reset, because the gateway drains the rest (up to a bound)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.harness import PASS_THROUGH, TEST_KEY, RunningGateway, gateway_settings, running_gateway
from tests.raw_http import closed_within, connect, head, read_response, send_until_closed

LIMIT = 1024 * 1024
DRAIN = 2 * 1024 * 1024
CHAT = b'{"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}'
#: 3.7 MB of nested arrays: ~0.5 s of CPU to parse, were it parsed.
NESTED = (
    b'{"model": "mock-chat", "messages": ['
    + b"[" * 1000
    + b"]" * 1000
    + b","
    + (b"[" * 500 + b"]" * 500 + b",") * 3600
    + b"1]}"
)


@pytest.fixture(scope="module")
def gw(fake_upstream: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("early")
    server = {"max_body_bytes": 4 * LIMIT, "drain_max_bytes": 8 * LIMIT, "body_timeout_s": 10}
    settings = gateway_settings(root, fake_upstream.base_url, server=server, **PASS_THROUGH)  # type: ignore[attr-defined]
    with running_gateway(settings) as running:
        yield running


@pytest.fixture(scope="module")
def small(fake_upstream: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("early-small")
    server = {"max_body_bytes": LIMIT, "drain_max_bytes": DRAIN, "body_timeout_s": 10}
    settings = gateway_settings(root, fake_upstream.base_url, server=server, **PASS_THROUGH)  # type: ignore[attr-defined]
    with running_gateway(settings) as running:
        yield running


@pytest.mark.parametrize(
    "auth", [{}, {"Authorization": "Bearer wg-not-a-key"}, {"Authorization": "Basic eDp5"}]
)
def test_an_unknown_caller_gets_401_before_its_huge_body_is_sent(gw, auth):
    assert len(NESTED) > 3_500_000
    sock = connect(gw.url)
    sock.sendall(
        head("POST", "/v1/chat/completions", {"Content-Type": "application/json", **auth}, len(NESTED))
        + NESTED[:65536]
    )
    start = time.monotonic()
    resp = read_response(sock)  # arrives while 98% of the body is still unsent: nothing parsed it
    assert time.monotonic() - start < 1.0
    assert resp.status == 401
    assert resp.json()["error"]["code"] == "invalid_api_key"
    assert "connection" not in resp.headers  # keep-alive: the rest is drained, the connection reused
    assert send_until_closed(sock, NESTED[65536:]) == len(NESTED) - 65536
    sock.sendall(
        head("POST", "/v1/chat/completions", {"Authorization": f"Bearer {TEST_KEY}"}, len(CHAT)) + CHAT
    )
    assert read_response(sock).status == 200


def test_an_unknown_caller_with_a_huge_body_costs_no_parse(gw):
    """The whole 3.7 MB nested body is sent without a key: the gateway's CPU for it stays far
    below the ~0.5 s that parsing it costs."""
    cpu0 = time.process_time()
    resp = httpx.post(
        gw.base_url + "/chat/completions", content=NESTED, headers={"Content-Type": "application/json"}
    )
    assert resp.status_code == 401
    assert time.process_time() - cpu0 < 0.25  # client + gateway, one process


def test_a_known_key_still_gets_the_body_checked(gw):
    resp = httpx.post(
        gw.base_url + "/chat/completions",
        content=b'{"model": ',
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    )
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"


def test_urllib_reads_the_413_of_a_body_over_the_limit(small):
    body = (
        b'{"model": "mock-chat", "messages": [{"role": "user", "content": "'
        + b"a" * (LIMIT + 100_000)
        + b'"}]}'
    )
    request = urllib.request.Request(
        small.base_url + "/chat/completions",
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 413
    assert b'"code":"payload_too_large"' in caught.value.read()


def test_urllib_reads_the_413_of_a_chunked_body_over_the_limit(small):
    def chunks() -> Iterator[bytes]:
        yield b'{"model": "mock-chat", "messages": [{"role": "user", "content": "'
        for _ in range(24):
            yield b"a" * 65536
        yield b'"}]}'

    request = urllib.request.Request(
        small.base_url + "/chat/completions",
        data=chunks(),
        method="POST",
        headers={"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 413


def test_urllib_reads_the_401_of_an_unknown_caller(small):
    request = urllib.request.Request(
        small.base_url + "/chat/completions", data=b"x" * (LIMIT // 2), method="POST"
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    assert caught.value.code == 401


def test_the_sdk_gets_413_and_its_connection_keeps_working(small):
    client = openai.OpenAI(base_url=small.base_url, api_key=TEST_KEY, max_retries=0)
    with pytest.raises(openai.APIStatusError) as caught:
        client.chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": "a" * (LIMIT + 1)}]
        )
    assert caught.value.status_code == 413
    assert client.chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "hi"}]
    ).choices


def test_a_body_beyond_the_drain_bound_is_cut_after_the_answer(small):
    sock = connect(small.url)
    total = 16 * DRAIN  # well beyond what socket buffers absorb
    sock.sendall(head("POST", "/v1/chat/completions", {"Authorization": f"Bearer {TEST_KEY}"}, total))
    resp = read_response(sock)  # Content-Length over the limit: answered before any body byte
    assert resp.status == 413
    sent = send_until_closed(sock, b"a" * total)
    assert sent < total
    assert closed_within(sock, 5) is not None
