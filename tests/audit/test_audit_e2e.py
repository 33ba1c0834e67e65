"""Through the real gateway over HTTP with the openai SDK: events, timeline, metrics, fail closed."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest
from audit_helpers import PG_DSN, all_stored_text, pg_execute

from gateway.audit.component import Audit
from tests.harness import (
    AUDITOR_KEY,
    LIMITED_KEY,
    PASS_THROUGH,
    PROVIDER_KEY,
    TEST_KEY,
    RunningGateway,
    gateway_settings,
    running_gateway,
)
from tests.waiting import wait_until

PROMPT = "My email is jane.e2e@example.org, please summarise order 77"
TRACE = "0af7651916cd43dd8448eb211c80319c"


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, fake_upstream, tmp_path_factory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("audit-e2e")
    audit = {"enabled": True, "backend": request.param}
    if request.param == "postgres":
        schema = f"wgtest_audit_e2e_{uuid.uuid4().hex[:10]}"
        audit.update(postgres_dsn=PG_DSN, postgres_schema=schema)
    settings = gateway_settings(root, fake_upstream.base_url, **{**PASS_THROUGH, "audit": audit})
    with running_gateway(settings) as running:
        yield running
    if request.param == "postgres":
        pg_execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _client(gw: RunningGateway, key: str = TEST_KEY, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0, default_headers=headers)


def _event(gw: RunningGateway, request_id: str) -> dict:
    r = httpx.get(
        f"{gw.url}/admin/audit",
        params={"request_id": request_id},
        headers={"authorization": f"Bearer {AUDITOR_KEY}"},
    )
    assert r.status_code == 200, r.text
    [event] = r.json()["data"]
    return event


def test_a_proxied_call_is_audited_with_identity_usage_stages_and_trace(gw):
    rid = f"req_{uuid.uuid4().hex}"
    client = _client(
        gw,
        **{
            "x-request-id": rid,
            "x-agent-id": "planner",
            "x-run-id": "run-e2e-1",
            "traceparent": f"00-{TRACE}-b7ad6b7169203331-01",
        },
    )
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": PROMPT}])
    ev = _event(gw, rid)
    assert ev["principal"] == {"key_id": "test", "team": "test", "user": "tester"}
    assert ev["agent"]["id"] == "planner" and ev["agent"]["run_id"] == "run-e2e-1"
    assert ev["model"]["requested"] == "gpt-test" and ev["status"] == 200 and ev["decision"] == "allow"
    assert ev["usage"]["input_tokens"] > 0 and ev["trace_id"] == TRACE
    assert {"authenticate", "forward"} <= set(ev["latency_ms"]["stages"])


def test_a_streamed_call_is_audited_once_with_its_usage(gw):
    rid = f"req_{uuid.uuid4().hex}"
    stream = _client(gw, **{"x-request-id": rid}).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "count to 3"}], stream=True
    )
    assert list(stream)
    ev = _event(gw, rid)
    assert ev["stream"] is True and ev["status"] == 200 and ev["usage"]["output_tokens"] > 0


def test_a_refused_call_is_audited_as_denied(gw):
    rid = f"req_{uuid.uuid4().hex}"
    with pytest.raises(openai.PermissionDeniedError):
        _client(gw, LIMITED_KEY, **{"x-request-id": rid}).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": PROMPT}]
        )
    ev = _event(gw, rid)
    assert ev["decision"] == "deny" and ev["status"] == 403 and ev["principal"]["key_id"] == "limited"


def test_the_run_timeline_lists_a_multi_call_run_in_order(gw):
    run = f"run-{uuid.uuid4().hex[:8]}"
    client = _client(gw, **{"x-agent-id": "worker", "x-run-id": run})
    for i in range(3):
        client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": f"step {i}"}])
    r = httpx.get(f"{gw.url}/admin/runs/{run}", headers={"authorization": f"Bearer {AUDITOR_KEY}"})
    doc = r.json()
    assert r.status_code == 200 and doc["summary"]["calls"] == 3 and doc["agent_ids"] == ["worker"]
    times = [s["time"] for s in doc["steps"]]
    assert times == sorted(times)


def test_metrics_show_the_traffic(gw):
    _client(gw).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    text = httpx.get(f"{gw.url}/metrics").text
    assert 'wardgate_requests_total{endpoint="chat.completions",model="gpt-test",status="200"}' in text
    assert (
        "wardgate_audit_record_seconds_bucket" in text
        and 'wardgate_stage_duration_seconds_count{stage="forward"}' in text
    )


async def test_no_key_or_prompt_reaches_the_audit_store(gw):
    _client(gw).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": PROMPT}])
    stored = await all_stored_text(gw.component(Audit).service)
    for secret in (TEST_KEY, LIMITED_KEY, PROVIDER_KEY, "jane.e2e@example.org", "summarise order"):
        assert secret.encode() not in stored


def test_an_audit_outage_fails_calls_closed_and_readiness_until_it_recovers(gw):
    store = gw.component(Audit).service.store

    async def broken(*args, **kwargs):
        raise ConnectionError("disk full")

    store.append = broken  # the store's own method, shadowed on the instance
    try:
        with pytest.raises(openai.InternalServerError) as err:
            _client(gw).chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "hi"}]
            )
        assert err.value.status_code == 503 and err.value.body["code"] == "audit_unavailable"
        r = httpx.get(f"{gw.url}/readyz")
        assert r.status_code == 503 and r.json()["checks"]["audit"].startswith("error")
    finally:
        del store.append
    wait_until(lambda: httpx.get(f"{gw.url}/readyz").status_code == 200, message="readiness did not recover")
    _client(gw).chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])


@pytest.mark.parametrize(
    "method,path",
    [
        ("POST", "/admin/approvals/apr_0123456789abcdef01234567/approve"),
        ("POST", "/admin/approvals/apr_0123456789abcdef01234567/deny"),
        ("PUT", "/admin/budgets/team/test"),
        ("PUT", "/admin/limits/team/test"),
        ("POST", "/admin/policies/reload"),
    ],
)
def test_an_auditor_key_can_read_but_not_approve_or_change_anything(gw, method, path):
    r = httpx.request(
        method,
        gw.url + path,
        json={"comment": "x", "day_usd": 1.0},
        headers={"authorization": f"Bearer {AUDITOR_KEY}"},
    )
    assert r.status_code == 403, r.text
    assert r.json()["error"]["type"] == "permission_error"
