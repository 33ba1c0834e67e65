"""Opt-in content capture over HTTP with the openai SDK, on SQLite and PostgreSQL.

The policy turns capture on for team ``test`` (``teams.test.capture``) and key ``limited``
by id (``capture_keys``); team ``other`` keeps the default (off). What is stored must be the
redacted request and the answer with the caller's restored values put back to placeholders;
pruning captures must leave ``verify`` green; a call whose PII redaction left raw (action
``allow``) is refused and the reason recorded.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from audit_helpers import PG_DSN, pg_execute

from gateway.audit.capture import refusal
from gateway.audit.component import Audit
from gateway.audit.config import AuditSettings
from gateway.audit.store import make_store
from gateway.audit.verify import verify
from gateway.call import Call, Endpoint
from gateway.redaction.config import _default_actions
from tests.harness import (
    AUDITOR_KEY,
    LIMITED_KEY,
    OTHER_TEAM_KEY,
    REPO,
    TEST_KEY,
    RunningGateway,
    gateway_settings,
    running_gateway,
)

EMAIL = "jane.capture@example.org"
IP = "10.20.30.40"


def _policy_with_capture(policies: Path) -> None:
    doc = yaml.safe_load((REPO / "policies" / "policy.yaml").read_text())
    doc["teams"]["test"] = {"models": ["*"], "capture": True}
    doc["capture_keys"] = ["limited"]
    (policies / "policy.yaml").write_text(yaml.safe_dump(doc))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, fake_upstream, tmp_path_factory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("audit-capture")
    audit: dict = {"enabled": True, "backend": request.param}
    if request.param == "postgres":
        schema = f"wgtest_capture_{uuid.uuid4().hex[:10]}"
        audit.update(postgres_dsn=PG_DSN, postgres_schema=schema)
    settings = gateway_settings(
        root,
        fake_upstream.base_url,
        limits={"enabled": False},
        approvals={"enabled": False},
        redaction={"enabled": True, "actions": {**_default_actions(), "IP_ADDRESS": "allow"}},
        audit=audit,
    )
    _policy_with_capture(settings.policies_dir)
    with running_gateway(settings) as running:
        yield running
    if request.param == "postgres":
        pg_execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _client(gw: RunningGateway, key: str = TEST_KEY, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, default_headers=headers)


def _run(gw: RunningGateway, run: str) -> dict:
    r = httpx.get(f"{gw.url}/admin/runs/{run}", headers={"authorization": f"Bearer {AUDITOR_KEY}"})
    assert r.status_code == 200, r.text
    return r.json()


def test_a_captured_call_stores_the_redacted_request_and_answer(gw, fake_upstream):
    run = f"run-{uuid.uuid4().hex[:8]}"
    fake_upstream.script_text("I will write to <EMAIL_ADDRESS_1> today.")
    answer = _client(gw, **{"x-run-id": run}).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": f"Mail {EMAIL} the invoice"}]
    )
    assert EMAIL in answer.choices[0].message.content  # the caller gets its own value back
    [step] = _run(gw, run)["steps"]
    capture = step["capture"]
    assert capture["intact"] is True and len(capture["hash"]) == 64
    content = capture["content"]
    assert content["request"]["messages"][0]["content"] == "Mail <EMAIL_ADDRESS_1> the invoice"
    assert content["answer"]["content"] == "I will write to <EMAIL_ADDRESS_1> today."
    assert EMAIL not in str(content)
    # The "why" of the policy decision: its effects and a content-free summary of its input.
    [policy] = [d for d in step["decisions"] if d["stage"] == "policy_request"]
    why = policy["why"]
    assert why["effects"]["capture"] is True and why["input"]["model"] == "gpt-test"
    assert why["input"]["pii"] == {"EMAIL_ADDRESS": 1} and why["input"]["messages"] == 1
    assert EMAIL not in str(step["decisions"]) and "invoice" not in str(step["decisions"])


def test_a_streamed_tool_call_is_captured_with_its_arguments_concealed(gw, fake_upstream):
    run = f"run-{uuid.uuid4().hex[:8]}"
    fake_upstream.script_tool_call("send_invoice", {"to": "<EMAIL_ADDRESS_1>", "amount": 12})
    stream = _client(gw, **{"x-run-id": run}).chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": f"Invoice {EMAIL} for 12"}],
        tools=[{"type": "function", "function": {"name": "send_invoice", "parameters": {"type": "object"}}}],
        stream=True,
    )
    chunks = list(stream)
    assert chunks
    [step] = _run(gw, run)["steps"]
    content = step["capture"]["content"]
    assert EMAIL not in str(content)
    assert content["request"]["tools"] == ["send_invoice"]
    assert "<EMAIL_ADDRESS_1>" in content["request"]["messages"][0]["content"]
    [tool] = content["answer"]["tool_calls"]
    assert tool["name"] == "send_invoice" and '"<EMAIL_ADDRESS_1>"' in tool["arguments"]
    assert step["capture"]["intact"] is True


def test_capture_per_key_id(gw):
    run = f"run-{uuid.uuid4().hex[:8]}"
    _client(gw, LIMITED_KEY, **{"x-run-id": run}).chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "hello"}]
    )
    [step] = _run(gw, run)["steps"]
    assert step["capture"]["intact"] is True
    assert step["capture"]["content"]["request"]["messages"] == [{"role": "user", "content": "hello"}]


def test_capture_is_off_by_default(gw):
    run = f"run-{uuid.uuid4().hex[:8]}"
    _client(gw, OTHER_TEAM_KEY, **{"x-run-id": run}).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": f"Mail {EMAIL}"}]
    )
    [step] = _run(gw, run)["steps"]
    assert "capture" not in step


def test_a_call_with_pii_left_raw_is_refused_and_says_why(gw):
    run = f"run-{uuid.uuid4().hex[:8]}"
    _client(gw, **{"x-run-id": run}).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": f"Ping host {IP} please"}]
    )
    [step] = _run(gw, run)["steps"]
    assert step["capture"] == {"refused": "the request holds unredacted IP_ADDRESS (action allow)"}
    assert IP not in str(step)


def test_a_call_without_redaction_is_refused():
    call = Call(request_id="r", endpoint=Endpoint.CHAT, body={"messages": []}, headers={})
    assert refusal(call, None) == "redaction is off for this call"


async def test_pruning_captures_keeps_the_chain_verifiable(gw):
    run = f"run-{uuid.uuid4().hex[:8]}"
    _client(gw, **{"x-run-id": run}).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "capture me"}]
    )
    live = gw.component(Audit).service
    assert live is not None
    settings = live.settings
    if settings.backend == "sqlite":
        settings = AuditSettings(backend="sqlite", sqlite_path=live.store.path)
    store = make_store(settings, Path("."))
    await store.open()
    try:
        assert await store.prune_captures(time.time() + 60) >= 1
        report = await verify(store)
        assert report.ok, report.first_break()
    finally:
        await store.close()
    [step] = _run(gw, run)["steps"]
    assert step["capture"]["pruned"] is True and "content" not in step["capture"]
