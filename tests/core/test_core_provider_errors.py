"""A provider's error text stays in the gateway: what the caller sees is the gateway's own
sanitised error, through the real openai SDK, non-stream and stream, chat and responses.

The fake upstream plays a careless or hostile provider that quotes the gateway's own key
(``echo_auth``), internal hosts, organisation ids and control characters in its errors.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.harness import PROVIDER_KEY, TEST_KEY

MESSAGES = [{"role": "user", "content": "hello"}]
INTERNAL = "Traceback (most recent call last): psycopg.OperationalError at db-7.internal.corp:5432"
#: Fragments of the provider key a leak could carry (the whole key, its middle, its tail).
KEY_PARTS = (PROVIDER_KEY, PROVIDER_KEY[8:24], PROVIDER_KEY[-12:])


@pytest.fixture
def client(gateway: Any, upstream: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.base_url, api_key=TEST_KEY, max_retries=0)


def _assert_no_key(*texts: str) -> None:
    for text in texts:
        for part in KEY_PARTS:
            assert part not in text, text


def _assert_no_leak(*texts: str) -> None:
    """What a caller may see: no key, no internal host, no organisation id."""
    _assert_no_key(*texts)
    for text in texts:
        assert "db-7.internal" not in text and "org-8XkQ" not in text, text


def _provider_log(caplog: pytest.LogCaptureFixture, request_id: str) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "wardgate.providers" and getattr(r, "request_id", None) == request_id
    ]


@pytest.mark.parametrize("status", [401, 403, 407])
def test_provider_auth_failure_is_502_upstream_auth_failed_with_a_generic_message(
    client: openai.OpenAI, upstream: Any, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    upstream.fault(
        "status",
        status=status,
        code="invalid_api_key",
        echo_auth=True,
        message=f"Incorrect API key provided: {PROVIDER_KEY[:8]}****{PROVIDER_KEY[-4:]}.",
    )
    caplog.set_level(logging.WARNING, logger="wardgate.providers")
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    err = caught.value
    assert (err.status_code, err.code, err.type) == (502, "upstream_auth_failed", "upstream_error")
    assert "gateway configuration problem" in err.message and str(status) in err.message
    assert err.response.headers["x-should-retry"] == "false"
    _assert_no_leak(err.response.text, str(dict(err.response.headers)))
    assert "****" not in err.response.text and "Incorrect API key" not in err.response.text
    assert len(upstream.requests) == 1  # not retried: the same credentials would fail again
    # The operator's view: the provider's answer, under the request id, with the key scrubbed.
    [record] = _provider_log(caplog, err.response.headers["x-request-id"])
    logged = record.getMessage()
    assert "Incorrect API key provided" in logged and "[redacted]" in logged
    _assert_no_key(logged)


def test_provider_5xx_body_is_never_relayed(
    client: openai.OpenAI, upstream: Any, caplog: pytest.LogCaptureFixture
) -> None:
    upstream.fault("status", status=503, message=INTERNAL, echo_auth=True)
    caplog.set_level(logging.WARNING, logger="wardgate.providers")
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    err = caught.value
    assert (err.status_code, err.code) == (502, "upstream_error")
    assert err.body["message"] == "The model provider failed with HTTP 503."
    assert err.response.headers["x-should-retry"] == "true"
    _assert_no_leak(err.response.text)
    assert "Traceback" not in err.response.text
    records = _provider_log(caplog, err.response.headers["x-request-id"])
    assert len(records) == 2 and all("Traceback" in r.getMessage() for r in records)  # one per attempt
    _assert_no_key(*(r.getMessage() for r in records))


def test_provider_429_keeps_retry_headers_but_not_the_organisation(
    client: openai.OpenAI, upstream: Any
) -> None:
    upstream.fault(
        "429",
        retry_after="3",
        retry_after_ms="3000",
        message="Rate limit reached for gpt-4o in organization org-8XkQ on tokens per min (TPM).",
    )
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    err = caught.value
    assert err.code == "upstream_rate_limited" and "(provider code: rate_limit_exceeded)" in err.message
    assert (err.response.headers["retry-after"], err.response.headers["retry-after-ms"]) == ("3", "3000")
    _assert_no_leak(err.response.text)


def test_provider_400_stays_useful_but_sanitised(client: openai.OpenAI, upstream: Any) -> None:
    """The caller's own mistake: the provider's explanation and param reach the caller,
    minus the key it quoted, control characters and anything past 300 characters."""
    message = "Invalid value for 'temperature': must be <= 2.\n\x1b[31mDEBUG\x1b[0m\u202e" + "x" * 5000
    upstream.fault(
        "status", status=400, message=message, param="temperature", code="invalid_value", echo_auth=True
    )
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, temperature=9)
    err = caught.value
    assert (err.code, err.param, err.type) == ("upstream_rejected", "temperature", "invalid_request_error")
    assert "Invalid value for 'temperature': must be <= 2." in err.message
    assert len(err.message) < 400 and err.message.endswith("…")
    assert not any(ch in err.message for ch in "\n\x1b\u202e")
    _assert_no_leak(err.response.text)


def test_provider_400_quoting_the_key_gets_it_redacted(client: openai.OpenAI, upstream: Any) -> None:
    upstream.fault("status", status=400, message="Bad header", echo_auth=True, param="messages[0].content")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert "[redacted]" in caught.value.message and caught.value.param == "messages[0].content"
    _assert_no_leak(caught.value.response.text)


def test_provider_404_model_is_relayed_as_404_upstream_rejected(client: openai.OpenAI, upstream: Any) -> None:
    upstream.fault(
        "status",
        status=404,
        code="model_not_found",
        message="The model `gpt-test` does not exist or you do not have access to it.",
    )
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert caught.value.code == "upstream_rejected" and "does not exist" in caught.value.message


def test_provider_param_that_is_not_a_plain_path_is_dropped(client: openai.OpenAI, upstream: Any) -> None:
    upstream.fault("status", status=400, message="bad", param=f"x {PROVIDER_KEY}")
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert caught.value.param is None
    _assert_no_leak(caught.value.response.text)


def test_chat_stream_error_event_mid_stream_becomes_the_gateways_sanitised_error(
    client: openai.OpenAI, upstream: Any
) -> None:
    upstream.fault("stream_error", after=2, message=INTERNAL, echo_auth=True)
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True):
            received.append(chunk)
    assert len(received) == 2
    assert (
        caught.value.message == "The model provider failed during the stream (provider code: server_error)."
    )
    _assert_no_leak(caught.value.message, str(caught.value.body))


def test_responses_stream_error_event_mid_stream_is_sanitised(gateway: Any, upstream: Any) -> None:
    upstream.fault("stream_error", after=3, message=INTERNAL, echo_auth=True, code="server_error")
    body = {"model": "gpt-test", "input": "hello", "stream": True}
    with httpx.stream(
        "POST",
        gateway.base_url + "/responses",
        json=body,
        headers={"authorization": f"Bearer {TEST_KEY}"},
        timeout=10,
    ) as resp:
        assert resp.status_code == 200
        raw = resp.read().decode()
    _assert_no_leak(raw)
    assert "Traceback" not in raw
    *_, last = [block for block in raw.split("\n\n") if block.strip()]
    assert last.startswith("event: error\n")
    error = orjson.loads(last.split("data: ", 1)[1])
    assert error["type"] == "error" and error["code"] == "upstream_error"
    assert error["message"] == "The model provider failed during the stream (provider code: server_error)."


def test_responses_failed_event_keeps_its_code_but_not_the_providers_message(
    gateway: Any, upstream: Any
) -> None:
    upstream.fault(
        "stream_error", after=3, failed=True, message=INTERNAL, echo_auth=True, code="server_error"
    )
    body = {"model": "gpt-test", "input": "hello", "stream": True}
    with httpx.stream(
        "POST",
        gateway.base_url + "/responses",
        json=body,
        headers={"authorization": f"Bearer {TEST_KEY}"},
        timeout=10,
    ) as resp:
        raw = resp.read().decode()
    _assert_no_leak(raw)
    *_, last = [block for block in raw.split("\n\n") if block.strip()]
    assert last.startswith("event: response.failed\n")
    error = orjson.loads(last.split("data: ", 1)[1])["response"]["error"]
    assert error == {"code": "server_error", "message": "The model provider failed to complete the response."}


def test_stream_error_event_before_the_first_event_is_retried(client: openai.OpenAI, upstream: Any) -> None:
    upstream.fault("stream_error", times=1, after=0, message=INTERNAL)
    chunks = list(client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Echo: hello"
    assert len(upstream.requests) == 2


def test_stream_error_event_on_every_attempt_is_a_502_without_the_providers_text(
    client: openai.OpenAI, upstream: Any
) -> None:
    upstream.fault("stream_error", after=0, message=INTERNAL, echo_auth=True)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    assert caught.value.code == "upstream_error"
    _assert_no_leak(caught.value.response.text)
    assert "Traceback" not in caught.value.response.text


def test_stream_request_answered_with_a_401_is_upstream_auth_failed(
    client: openai.OpenAI, upstream: Any
) -> None:
    upstream.fault("status", status=401, echo_auth=True, message="Incorrect API key")
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    assert caught.value.code == "upstream_auth_failed"
    _assert_no_leak(caught.value.response.text)
