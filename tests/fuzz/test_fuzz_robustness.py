"""Targeted hostile inputs: nesting, size, encoding, content types, headers, concurrency.

Each test names the input and the answer the gateway owes it: a 2xx when the request is
valid, else an OpenAI-shaped 4xx naming the problem; never a 5xx, and the gateway keeps
serving everyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.fuzz.fuzz_helpers import AUTH, JSON_HEADERS, assert_clean, assert_error, nested
from tests.harness import LIMITED_KEY, RunningGateway

CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
LIMIT = 4 * 1024 * 1024  # the default server.max_body_bytes
MAX_DEPTH = 64  # gateway/http/validate.py


@pytest.fixture(scope="module")
def client(fuzz_gateway: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fuzz_gateway.base_url, timeout=30) as c:
        yield c


def post(
    client: httpx.Client, body: bytes | dict, path: str = "/chat/completions", **headers: str
) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return client.post(path, content=content, headers={**JSON_HEADERS, **headers})


def raw_exchange(gateway: RunningGateway, request: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes no HTTP client would, read what comes back until the server closes or pauses."""
    host, port = gateway.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        with contextlib.suppress(TimeoutError):
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and answer.split(b"\r\n\r\n", 1)[1]:
                    break
    return answer


def chat_with(value: Any, model: str = "gpt-test") -> dict[str, Any]:
    return {**CHAT, "model": model, "metadata": {"x": value}}


# ---- nesting ----------------------------------------------------------------------------------


def _depth_body(levels: int, kind: str) -> bytes:
    """A chat body ``levels`` deep in total (the body object itself is level 1)."""
    inner = nested(levels - 1, kind=kind)  # the body, then levels - 1 containers under "extra"
    return orjson.dumps(CHAT)[:-1] + b', "extra": ' + inner + b"}"


@pytest.mark.parametrize("kind", ["list", "dict"])
def test_body_nested_exactly_to_the_limit_is_forwarded(
    client: httpx.Client, upstream: Any, kind: str
) -> None:
    resp = post(client, _depth_body(MAX_DEPTH, kind))
    assert resp.status_code == 200, resp.text
    assert upstream.requests and "extra" in upstream.requests[-1].json


@pytest.mark.parametrize("levels", [MAX_DEPTH + 1, 200, 300, 1000])
@pytest.mark.parametrize("model", ["gpt-test", "mock-chat"])
def test_body_nested_beyond_the_limit_is_400_before_any_provider(
    client: httpx.Client, upstream: Any, levels: int, model: str
) -> None:
    """300 levels used to be a 500: orjson parses 1024 levels but serialises only 254."""
    body = _depth_body(levels, "list").replace(b'"gpt-test"', orjson.dumps(model), 1)
    error = assert_error(post(client, body), 400)
    assert "nested too deeply" in error["message"]
    assert upstream.requests == []


def test_body_nested_past_the_json_parser_limit_is_400_invalid_json(client: httpx.Client) -> None:
    # 100,000 objects are refused by the container bound before the parser even starts.
    assert_error(post(client, nested(100_000, kind="dict")), 400, "content_too_complex")
    assert_error(post(client, b'{"a":' + nested(5000) + b"}"), 400, "invalid_json")


def test_brackets_inside_strings_do_not_count_as_nesting(client: httpx.Client) -> None:
    text = "[{" * 500 + ' \\" ' + "]}" * 3
    resp = post(client, {**CHAT, "messages": [{"role": "user", "content": text}], "extra": [[["x"]]]})
    assert resp.status_code == 200, resp.text


# ---- size -------------------------------------------------------------------------------------


def _chat_of_size(size: int) -> bytes:
    head, tail = b'{"model":"mock-chat","messages":[{"role":"user","content":"', b'"}]}'
    filler = (b"lorem " * (size // 6 + 1))[: size - len(head) - len(tail)]
    return head + filler + tail


def _chunks(body: bytes, size: int = 256 * 1024) -> Iterator[bytes]:
    for i in range(0, len(body), size):
        yield body[i : i + size]


def test_chunked_body_one_byte_over_the_limit_is_413(client: httpx.Client, upstream: Any) -> None:
    resp = client.post("/chat/completions", content=_chunks(_chat_of_size(LIMIT + 1)), headers=JSON_HEADERS)
    assert "content-length" not in resp.request.headers  # sent chunked: the limit is counted, not declared
    assert_error(resp, 413, "payload_too_large")
    assert upstream.requests == []
    assert post(client, CHAT).status_code == 200


def test_chunked_body_exactly_at_the_limit_is_answered(client: httpx.Client) -> None:
    resp = client.post("/chat/completions", content=_chunks(_chat_of_size(LIMIT)), headers=JSON_HEADERS)
    assert resp.status_code == 200, resp.text[:300]


def test_declared_oversize_body_is_refused_before_it_is_sent(fuzz_gateway: RunningGateway) -> None:
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: {AUTH['authorization']}\r\n"
        f"content-type: application/json\r\ncontent-length: {LIMIT * 4}\r\n\r\n"
    ).encode()
    started = time.monotonic()
    answer = raw_exchange(fuzz_gateway, head + b'{"model": ')
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b'"payload_too_large"' in answer
    assert time.monotonic() - started < 3


def test_ten_thousand_messages_are_forwarded_whole(client: httpx.Client, upstream: Any) -> None:
    messages = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"} for i in range(10_000)
    ]
    for model in ("gpt-test", "mock-chat"):
        resp = post(client, {"model": model, "messages": messages})
        assert resp.status_code == 200, resp.text[:300]
    assert len(upstream.requests[-1].json["messages"]) == 10_000


def test_model_name_of_100_kb_is_400_and_not_echoed(client: httpx.Client) -> None:
    error = assert_error(post(client, {**CHAT, "model": "m" * 100_000}), 400, param="model")
    assert len(error["message"]) < 200


def test_model_name_at_the_length_limit_is_an_unknown_model(client: httpx.Client) -> None:
    assert_error(post(client, {**CHAT, "model": "m" * 256}), 404, "model_not_found", "model")


# ---- encoding and JSON edge cases -------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"  \n\t ",
        b"\xef\xbb\xbf" + orjson.dumps(CHAT),
        b'{"model": "gpt-test", "messages": [',
        b"null",
        b'{"model": "gpt-test", "messages": [], "x": NaN}',
        b'{"model": "gpt-test", "x": Infinity}',
        b'{"model": "gpt-test", "x": 1e400}',
        b'{"model": "gpt-test", "x": "\\ud800"}',
        b'{"model": "gpt-test", "x": "\\udc00\\ud800"}',
        b"{'model': 'gpt-test'}",
        b'{"model": "gpt-test",}',
    ],
    ids=[
        "empty",
        "whitespace",
        "bom",
        "truncated",
        "null",
        "nan",
        "infinity",
        "1e400",
        "lone-high-surrogate",
        "reversed-surrogates",
        "single-quotes",
        "trailing-comma",
    ],
)
def test_body_that_is_not_a_json_object_is_400(client: httpx.Client, upstream: Any, body: bytes) -> None:
    assert_error(post(client, body), 400)
    assert upstream.requests == []


@pytest.mark.parametrize("bad", [b"\xff", b"\xc0\xaf", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"])
def test_invalid_utf8_inside_a_string_is_400_naming_utf8(client: httpx.Client, bad: bytes) -> None:
    body = b'{"model": "gpt-test", "messages": [{"role": "user", "content": "a' + bad + b'b"}]}'
    error = assert_error(post(client, body), 400, "invalid_json")
    assert "UTF-8" in error["message"]


def test_duplicate_keys_are_refused_so_no_value_is_smuggled_past_a_check(
    client: httpx.Client, upstream: Any
) -> None:
    """Parsers disagree on which of two values counts; the gateway forwards neither."""
    body = b'{"model": "no-such-model", "model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}'
    assert_error(post(client, body), 400, "invalid_json", param="model")
    sneaky = b'{"model": "mock-chat", "model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}'
    assert_error(
        post(client, sneaky, authorization=f"Bearer {LIMITED_KEY}"), 400, "invalid_json", param="model"
    )
    assert upstream.requests == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_content_type_is_not_trusted_a_json_body_is_answered(
    client: httpx.Client, content_type: str | None
) -> None:
    headers = {**AUTH, **({"content-type": content_type} if content_type else {})}
    assert client.post("/chat/completions", content=orjson.dumps(CHAT), headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"model=gpt-test&messages=hi"),
        (
            "multipart/form-data; boundary=xx",
            b'--xx\r\ncontent-disposition: form-data; name="model"\r\n\r\ngpt-test\r\n--xx--',
        ),
        ("application/octet-stream", bytes(range(256))),
    ],
)
def test_non_json_body_is_400_whatever_its_content_type(
    client: httpx.Client, content_type: str, body: bytes
) -> None:
    assert_error(
        client.post("/chat/completions", content=body, headers={**AUTH, "content-type": content_type}), 400
    )


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_unsupported_method_is_an_openai_shaped_405(client: httpx.Client, method: str) -> None:
    assert_error(client.request(method, "/chat/completions", headers=AUTH), 405, "method_not_allowed")


# ---- identity headers -------------------------------------------------------------------------


@pytest.mark.parametrize("header", ["x-agent-id", "x-run-id", "x-parent-run-id"])
@pytest.mark.parametrize("value", ["a" * 1024, "a\tb", "a\x85b"], ids=["1kb", "tab", "c1-control"])
def test_identity_header_too_long_or_with_control_characters_is_400(
    client: httpx.Client, upstream: Any, header: str, value: str
) -> None:
    resp = client.post(
        "/chat/completions",
        content=orjson.dumps(CHAT),
        headers={**JSON_HEADERS, header: value.encode("latin-1")},
    )
    assert_error(resp, 400, param=header)
    assert upstream.requests == []


def test_identity_header_with_ascii_control_bytes_is_refused_by_the_http_server(
    fuzz_gateway: RunningGateway, client: httpx.Client
) -> None:
    """uvicorn's parser refuses such a request line by itself (plain-text 400) before the app runs."""
    body = orjson.dumps(CHAT)
    request = (
        f"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: {AUTH['authorization']}\r\n"
        f"content-length: {len(body)}\r\nx-agent-id: a\x01b\r\n\r\n"
    ).encode() + body
    assert raw_exchange(fuzz_gateway, request).startswith(b"HTTP/1.1 400")
    assert post(client, CHAT).status_code == 200


@pytest.mark.parametrize("value", ["r" * 10_000, "id\twith\ttabs", "a\x85b", "trace-1234 abc"])
def test_unusable_client_request_id_is_refused_under_a_fresh_id(client: httpx.Client, value: str) -> None:
    resp = client.post(
        "/chat/completions",
        content=orjson.dumps(CHAT),
        headers={**JSON_HEADERS, "x-request-id": value.encode("latin-1")},
    )
    assert_error(resp, 400, param="x-request-id")
    assert resp.headers["x-request-id"].startswith("req_") and len(resp.headers["x-request-id"]) < 64


def test_sane_client_request_id_is_echoed(client: httpx.Client) -> None:
    resp = post(client, CHAT, **{"x-request-id": "trace-1234.abc"})
    assert resp.headers["x-request-id"] == "trace-1234.abc"


# ---- concurrency ------------------------------------------------------------------------------

_BAD_BODIES = [
    b'{"model": "gpt-test", "messages": [',
    nested(100_000),
    _depth_body(300, "list"),
    b'{"model": "gpt-test", "messages": [{"role": "user", "content": "\xff"}]}',
    orjson.dumps({**CHAT, "messages": "hi"}),
    orjson.dumps({**CHAT, "model": "x" * 100_000}),
    orjson.dumps({**CHAT, "stream": "yes"}),
    b"",
]


async def _abandoned_upload(gateway: RunningGateway) -> None:
    """Declare a body, send a tenth of it, hang up."""
    host, port = gateway.url.removeprefix("http://").split(":")
    _, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n" + b"{" * 100
    )
    await writer.drain()
    writer.close()
    with contextlib.suppress(ConnectionError):
        await writer.wait_closed()


async def test_malformed_floods_do_not_disturb_good_requests(fuzz_gateway: RunningGateway) -> None:
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=fuzz_gateway.base_url, timeout=60, limits=limits) as client:

        async def good(i: int) -> httpx.Response:
            body = {
                "model": "gpt-test" if i % 2 else "mock-chat",
                "messages": [{"role": "user", "content": f"n{i}"}],
                "stream": i % 3 == 0,
            }
            return await client.post("/chat/completions", content=orjson.dumps(body), headers=JSON_HEADERS)

        async def bad(i: int) -> httpx.Response:
            body = _BAD_BODIES[i % len(_BAD_BODIES)]
            return await client.post("/chat/completions", content=body, headers=JSON_HEADERS)

        tasks = [good(i) for i in range(60)] + [bad(i) for i in range(160)]
        results = await asyncio.gather(*tasks, *(_abandoned_upload(fuzz_gateway) for _ in range(20)))
        goods, bads = results[:60], results[60:220]
        assert all(r.status_code == 200 for r in goods), [r.text[:200] for r in goods if r.status_code != 200]
        for r in bads:
            assert 400 <= r.status_code < 500, r.text[:300]
            assert_clean(r)
        assert (await client.get(fuzz_gateway.url + "/healthz")).json() == {"status": "ok"}
