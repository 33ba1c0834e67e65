"""Identity values (X-Agent-Id, X-Run-Id, X-Parent-Run-Id, X-Request-Id and the body's
``metadata`` equivalents) follow one documented rule, so none can carry a secret, an email,
a newline or a formula into the audit log: 1-128 characters from ``A-Z a-z 0-9 . _ : / + = -``
starting with a letter or digit, and nothing shaped like a key or token.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from gateway.audit.component import Audit
from tests.harness import (
    AUDITOR_KEY,
    PASS_THROUGH,
    TEST_KEY,
    RunningGateway,
    gateway_settings,
    running_gateway,
)

HEADERS = {"x-agent-id": "X-Agent-Id", "x-run-id": "X-Run-Id", "x-parent-run-id": "X-Parent-Run-Id"}
CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}
AGENT_KEY = "wg-test-0123456789abcdef0123456789abcdef"  # the caller's own key, sent by mistake

#: Values an agent could send that must never become an id (header-safe: latin-1, no CR/LF).
BAD_HEADER_VALUES = {
    "129-chars": "a" * 129,
    "space": "run 42",
    "tab": "run\t42",
    "email": "jane.doe@example.org",
    "person": "Jane Doe",
    "latin1-letter": "agent-\xe9",
    "c1-control": "a\x85b",
    "nbsp": "a\xa0b",
    "own-virtual-key": AGENT_KEY,
    "key-inside": f"agent.{AGENT_KEY}",
    "provider-key": "sk-proj-abcdefghijklmnopqrstuvwxyz012345",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
    "aws-key-id": "AKIAIOSFODNN7EXAMPLE",
    "formula": "=HYPERLINK(1)",
    "leading-dash": "-run",
    "leading-dot": ".hidden",
    "quote": 'run"1',
    "semicolon": "run;drop",
    "backslash": "run\\1",
}
#: Only reachable through the body (a header cannot hold them).
BAD_BODY_VALUES = {
    "newline": "run-1\nINFO forged log line",
    "cr": "run-1\r",
    "zero-width": "run\u200b1",
    "cyrillic": "r\u0443n-1",
    "fullwidth": "\uff52\uff55\uff4e",
    "emoji": "run-\U0001f600",
    "nul": "run\x00",
    "not-a-string": 42,
    "empty": "",
    "list": ["run-1"],
}
GOOD_VALUES = [
    "planner",
    "run-20261207-101010-9f3a",
    "a" * 128,
    "0",
    "123e4567-e89b-12d3-a456-426614174000",
    "team/agent:v2.1",
    "trace_ab+cd==",
    "task-0123456789abcdef0123",
]


@pytest.fixture(scope="module")
def gw(fake_upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("identity")
    settings = gateway_settings(root, fake_upstream.base_url, **{**PASS_THROUGH, "audit": {"enabled": True}})
    with running_gateway(settings) as running:
        yield running


@pytest.fixture(scope="module")
def http(gw: RunningGateway) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gw.base_url, headers={"authorization": f"Bearer {TEST_KEY}"}, timeout=10) as c:
        yield c


def _sdk(gw: RunningGateway, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0, default_headers=headers)


def _assert_refused(resp: httpx.Response, param: str, value: Any) -> None:
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert (error["code"], error["type"], error["param"]) == (
        "invalid_request",
        "invalid_request_error",
        param,
    )
    assert "A-Z a-z 0-9" in error["message"]
    if isinstance(value, str) and len(value) > 3:
        assert value not in error["message"]  # never echoed: it may be the secret the rule keeps out


@pytest.mark.parametrize("header", list(HEADERS))
@pytest.mark.parametrize("value", list(BAD_HEADER_VALUES.values()), ids=list(BAD_HEADER_VALUES))
def test_bad_identity_header_is_400_naming_the_header_and_never_forwarded(
    http: httpx.Client, upstream: Any, header: str, value: str
) -> None:
    resp = http.post("/chat/completions", json=CHAT, headers={header: value.encode("latin-1")})
    _assert_refused(resp, header, value)
    assert upstream.requests == []


@pytest.mark.parametrize("field", ["agent_id", "run_id", "parent_run_id"])
@pytest.mark.parametrize(
    "value",
    [*BAD_BODY_VALUES.values(), AGENT_KEY, "a" * 129, "a@b.c"],
    ids=[*BAD_BODY_VALUES, "own-key", "129-chars", "email"],
)
def test_bad_identity_in_metadata_is_400_naming_the_field(
    http: httpx.Client, upstream: Any, field: str, value: Any
) -> None:
    resp = http.post("/chat/completions", json={**CHAT, "metadata": {field: value}})
    _assert_refused(resp, f"metadata.{field}", value)
    assert upstream.requests == []


def test_bad_metadata_id_is_refused_even_when_a_valid_header_wins(http: httpx.Client, upstream: Any) -> None:
    """Both reach the provider and the policy input, so both must follow the rule."""
    resp = http.post(
        "/chat/completions", json={**CHAT, "metadata": {"run_id": "run\n1"}}, headers={"x-run-id": "run-1"}
    )
    _assert_refused(resp, "metadata.run_id", "run\n1")


@pytest.mark.parametrize("value", GOOD_VALUES)
def test_valid_ids_pass_on_chat_and_responses_through_the_sdk(gw: RunningGateway, value: str) -> None:
    headers = {"X-Agent-Id": value, "X-Run-Id": value, "X-Parent-Run-Id": value, "X-Request-Id": value}
    raw = _sdk(gw, **headers).chat.completions.with_raw_response.create(**CHAT)
    assert raw.headers["x-request-id"] == value
    assert raw.parse().choices[0].message.content
    resp = _sdk(gw, **{**headers, "X-Request-Id": f"r.{value}"[:128]}).responses.create(
        model="gpt-test", input="hi"
    )
    assert resp.output_text


def test_an_empty_header_counts_as_absent_and_metadata_is_used(gw: RunningGateway) -> None:
    client = _sdk(gw, **{"X-Agent-Id": "", "X-Request-Id": "req.empty-header-1"})
    client.chat.completions.create(**CHAT, metadata={"agent_id": "from-metadata"})
    assert _audited(gw, "req.empty-header-1")["agent"]["id"] == "from-metadata"


@pytest.mark.parametrize("endpoint", ["chat", "responses", "embeddings"])
def test_every_endpoint_refuses_a_bad_id_through_the_sdk(
    gw: RunningGateway, upstream: Any, endpoint: str
) -> None:
    client = _sdk(gw, **{"X-Agent-Id": AGENT_KEY})
    with pytest.raises(openai.BadRequestError) as caught:
        if endpoint == "chat":
            client.chat.completions.create(**CHAT)
        elif endpoint == "responses":
            client.responses.create(model="gpt-test", input="hi")
        else:
            client.embeddings.create(model="embed-test", input="hi")
    assert caught.value.code == "invalid_request" and caught.value.param == "x-agent-id"
    assert upstream.requests == []


@pytest.mark.parametrize(
    "value",
    [v for k, v in BAD_HEADER_VALUES.items() if k != "129-chars"] + ["r" * 10_000],
    ids=[k for k in BAD_HEADER_VALUES if k != "129-chars"] + ["10k"],
)
def test_bad_request_id_is_400_under_a_fresh_id_and_never_echoed(
    http: httpx.Client, upstream: Any, value: str
) -> None:
    resp = http.post("/chat/completions", json=CHAT, headers={"x-request-id": value.encode("latin-1")})
    _assert_refused(resp, "x-request-id", value)
    assert resp.headers["x-request-id"].startswith("req_") and resp.headers["x-request-id"] != value
    assert upstream.requests == []


def test_refused_ids_never_reach_the_audit_store(gw: RunningGateway, http: httpx.Client) -> None:
    """The refusal itself is audited (under a fresh request id), without the value."""
    for header in (*HEADERS, "x-request-id"):
        resp = http.post("/chat/completions", json=CHAT, headers={header: f"x.{AGENT_KEY}"})
        assert resp.status_code == 400
        assert _audited(gw, resp.headers["x-request-id"])["error"]["code"] == "invalid_request"
    resp = http.post("/chat/completions", json={**CHAT, "metadata": {"agent_id": "x\nforged"}})
    assert resp.status_code == 400
    stored = _all_stored(gw)
    assert AGENT_KEY.encode() not in stored and b"forged" not in stored


def _audited(gw: RunningGateway, request_id: str) -> dict[str, Any]:
    r = httpx.get(
        f"{gw.url}/admin/audit",
        params={"request_id": request_id},
        headers={"authorization": f"Bearer {AUDITOR_KEY}"},
    )
    assert r.status_code == 200, r.text
    [event] = r.json()["data"]
    return event


def _all_stored(gw: RunningGateway) -> bytes:
    store = gw.component(Audit).service.store
    db = sqlite3.connect(store.path)
    try:
        rows = db.execute("SELECT * FROM audit_events").fetchall()
    finally:
        db.close()
    return orjson.dumps([[str(c) for c in row] for row in rows])
