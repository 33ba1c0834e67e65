"""Every bad input and every upstream fault gets an OpenAI-shaped error with the right status."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from tests.harness import LIMITED_KEY, PASS_THROUGH, TEST_KEY, gateway_settings, running_gateway
from tests.waiting import wait_until_async

CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}


def post(
    gateway,
    body: bytes | dict,
    key: str | None = TEST_KEY,
    path: str = "/chat/completions",
    headers: dict | None = None,
) -> httpx.Response:
    h = {"content-type": "application/json", **(headers or {})}
    if key:
        h["authorization"] = f"Bearer {key}"
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    return httpx.post(gateway.base_url + path, headers=h, timeout=30, **kwargs)


def assert_error(
    resp: httpx.Response, status: int, code: str | None = None, param: str | None = None
) -> dict:
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"].startswith("application/json")
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "code", "param"}
    assert err["message"]
    if code is not None:
        assert err["code"] == code
    if param is not None:
        assert err["param"] == param
    return err


def test_malformed_json_is_400(gateway, upstream):
    assert_error(post(gateway, b'{"model": "gpt-test", "messages": ['), 400, "invalid_json")
    assert upstream.requests == []


def test_body_that_is_not_an_object_is_400(gateway):
    assert_error(post(gateway, b"[1, 2, 3]"), 400)


def test_messages_not_a_list_is_400_with_param(gateway):
    assert_error(post(gateway, {"model": "gpt-test", "messages": "hello"}), 400, param="messages")


def test_stream_not_a_bool_is_400_with_param(gateway):
    assert_error(post(gateway, {**CHAT, "stream": "yes"}), 400, param="stream")


def test_message_without_role_is_400_with_its_path(gateway):
    assert_error(
        post(gateway, {"model": "gpt-test", "messages": [{"content": "x"}]}), 400, param="messages[0].role"
    )


def test_max_tokens_of_wrong_type_is_400(gateway):
    assert_error(post(gateway, {**CHAT, "max_tokens": "many"}), 400, param="max_tokens")


def test_missing_model_is_400(gateway):
    assert_error(post(gateway, {"messages": CHAT["messages"]}), 400, param="model")


def test_unknown_model_is_404_model_not_found(gateway):
    assert_error(post(gateway, {**CHAT, "model": "no-such-model"}), 404, "model_not_found", "model")


def test_model_on_the_wrong_endpoint_is_404(gateway):
    assert_error(post(gateway, {"model": "embed-test", "messages": CHAT["messages"]}), 404, "model_not_found")


def test_body_over_the_limit_is_413(gateway, upstream):
    huge = {**CHAT, "messages": [{"role": "user", "content": "x" * (100 * 1024)}]}
    assert_error(post(gateway, huge), 413, "payload_too_large")
    assert upstream.requests == []


def test_invalid_utf8_is_400(gateway):
    err = assert_error(
        post(gateway, b'{"model": "gpt-test", "messages": [{"role": "user", "content": "\xff\xfe"}]}'), 400
    )
    assert "UTF-8" in err["message"]


def test_missing_key_is_401(gateway):
    assert_error(post(gateway, CHAT, key=None), 401, "invalid_api_key")


def test_unknown_key_is_401_and_the_key_is_not_echoed(gateway):
    err = assert_error(post(gateway, CHAT, key="wg-not-a-real-key-123456"), 401, "invalid_api_key")
    assert "wg-not-a-real-key-123456" not in err["message"]


def test_model_not_allowed_for_the_key_is_403(gateway):
    assert_error(post(gateway, CHAT, key=LIMITED_KEY), 403, "model_not_allowed")


def test_unknown_v1_path_is_openai_shaped_404(gateway):
    resp = httpx.post(
        gateway.base_url + "/assistants", json={}, headers={"authorization": f"Bearer {TEST_KEY}"}
    )
    assert_error(resp, 404, "not_found")


def test_upstream_timeout_is_504(gateway, upstream):
    upstream.fault("hang")
    started = time.monotonic()
    assert_error(post(gateway, CHAT), 504, "upstream_timeout")
    assert time.monotonic() - started < 20


def test_upstream_5xx_is_502_with_should_retry(gateway, upstream):
    upstream.fault("status", status=503)
    resp = post(gateway, CHAT)
    assert_error(resp, 502, "upstream_error")
    assert resp.headers["x-should-retry"] == "true"


def test_upstream_5xx_once_is_retried_transparently(gateway, upstream):
    upstream.fault("status", times=1, status=500)
    resp = post(gateway, CHAT)
    assert resp.status_code == 200
    assert len(upstream.requests) == 2


def test_upstream_connection_error_is_502(tmp_path_factory):
    root = tmp_path_factory.mktemp("dead")
    settings = gateway_settings(root, "http://127.0.0.1:9/v1", **PASS_THROUGH)
    with running_gateway(settings) as gw:
        resp = post(gw, CHAT)
    assert_error(resp, 502, "upstream_error")
    assert resp.headers["x-should-retry"] == "true"


def test_upstream_429_is_passed_on_with_retry_headers(gateway, upstream):
    upstream.fault("429", retry_after="7", retry_after_ms="7000")
    resp = post(gateway, CHAT)
    assert_error(resp, 429)
    assert resp.headers["retry-after"] == "7"
    assert resp.headers["retry-after-ms"] == "7000"


def test_upstream_invalid_json_is_502(gateway, upstream):
    upstream.fault("invalid_json")
    assert_error(post(gateway, CHAT), 502, "upstream_error")


def test_broken_sse_before_first_event_is_502(gateway, upstream):
    upstream.fault("broken_sse")
    assert_error(post(gateway, {**CHAT, "stream": True}), 502, "upstream_error")


def test_stream_cut_mid_way_ends_with_an_sse_error_event(gateway, upstream):
    upstream.fault("cut_stream", after=2)
    client = openai.OpenAI(base_url=gateway.base_url, api_key=TEST_KEY, max_retries=0)
    received = []
    with pytest.raises(openai.APIError):
        for chunk in client.chat.completions.create(model="gpt-test", messages=CHAT["messages"], stream=True):
            received.append(chunk)
    assert len(received) >= 1


async def test_client_disconnect_mid_stream_cancels_the_upstream_request(gateway, upstream):
    upstream.fault("hang", after=1)
    async with httpx.AsyncClient(timeout=10) as http:
        async with http.stream(
            "POST",
            gateway.base_url + "/chat/completions",
            json={**CHAT, "stream": True},
            headers={"authorization": f"Bearer {TEST_KEY}"},
        ) as resp:
            assert resp.status_code == 200
            async for _ in resp.aiter_bytes():
                break
    await wait_until_async(
        lambda: upstream.requests and upstream.requests[-1].disconnected,
        message="the gateway must close the upstream stream",
    )


def test_openai_sdk_sees_should_retry_false_on_non_retryable_errors(gateway):
    client = openai.OpenAI(base_url=gateway.base_url, api_key=TEST_KEY, max_retries=2)
    with pytest.raises(openai.NotFoundError) as info:
        client.chat.completions.create(model="nope", messages=CHAT["messages"])
    assert info.value.code == "model_not_found"
