"""A hit is still guarded and accounted: the response policy and approvals judge it as if the
model had just answered, answers needing an approval are never stored, and a hit is booked at
zero with its saving in the audit log, the spend report and the metrics."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import yaml

from gateway.http.launch import ServedApp
from tests.cache.conftest import cache_settings, serve_with_clock
from tests.harness import ADMIN_KEY, AUDITOR_KEY, TEST_KEY
from tests.waiting import FakeClock

TOOLS = [
    {"type": "function", "function": {"name": name, "parameters": {"type": "object"}}}
    for name in ("transfer_funds", "close_ledger")
]


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream: Any) -> Iterator[ServedApp]:
    root = tmp_path_factory.mktemp("cache-guards")
    settings = cache_settings(root, fake_upstream.base_url)
    with serve_with_clock(settings, FakeClock()) as served:
        served.policies_dir = settings.policies_dir  # type: ignore[attr-defined]
        yield served


def _chat(gw: ServedApp, content: str, headers: dict[str, str] | None = None, **kw: Any) -> Any:
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, timeout=30, default_headers=headers)
    return client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": content}], temperature=0, **kw
    )


def _sent(upstream: Any) -> int:
    return len([r for r in upstream.requests if r.path.endswith("/chat/completions")])


def _admin(gw: ServedApp, method: str, path: str, key: str = ADMIN_KEY) -> httpx.Response:
    return httpx.request(method, gw.url + path, headers={"authorization": f"Bearer {key}"}, timeout=30)


def test_an_answer_needing_approval_is_never_stored(gateway: ServedApp, upstream: Any) -> None:
    content = f"Pay the invoice {uuid.uuid4().hex}"
    for run in ("run-a", "run-b"):  # another run: not joined to the first one's pending approval
        upstream.script_tool_call("transfer_funds", {"amount": 5000, "to": "ACME"}, times=1)
        with pytest.raises(openai.APIStatusError) as caught:
            _chat(gateway, content, headers={"x-run-id": run}, tools=TOOLS)
        assert caught.value.status_code == 409
        assert caught.value.response.headers["x-wardgate-cache"] == "miss"
    assert _sent(upstream) == 2


def test_a_hit_goes_through_the_response_policy_and_approvals_of_now(
    gateway: ServedApp, upstream: Any
) -> None:
    pay, close = f"Pay a small invoice {uuid.uuid4().hex}", f"Close the ledger {uuid.uuid4().hex}"
    upstream.script_tool_call("transfer_funds", {"amount": 500, "to": "ACME"}, times=1)
    assert _chat(gateway, pay, tools=TOOLS).headers["x-wardgate-cache"] == "miss"  # under the threshold
    upstream.script_tool_call("close_ledger", {"year": 2025}, times=1)
    assert _chat(gateway, close, tools=TOOLS).headers["x-wardgate-cache"] == "miss"
    assert _chat(gateway, pay, tools=TOOLS).headers["x-wardgate-cache"] == "hit"
    # The policy changes: transfers above 100 need a finance approver, close_ledger is denied.
    path = gateway.policies_dir / "policy.yaml"  # type: ignore[attr-defined]
    doc = yaml.safe_load(path.read_text())
    doc["high_stakes"]["transfer_funds"]["above"] = 100
    doc["high_stakes"]["close_ledger"] = {"deny": True, "reason": "the ledger is closed by people"}
    path.write_text(yaml.safe_dump(doc))
    # (the file watcher may have loaded it already: then the reload finds it unchanged)
    assert _admin(gateway, "POST", "/admin/policies/reload").json()["result"] in ("loaded", "unchanged")
    with pytest.raises(openai.APIStatusError) as held:
        _chat(gateway, pay, tools=TOOLS)
    assert held.value.status_code == 409 and held.value.response.headers["x-wardgate-cache"] == "hit"
    with pytest.raises(openai.PermissionDeniedError) as denied:
        _chat(gateway, close, tools=TOOLS)
    assert denied.value.response.headers["x-wardgate-cache"] == "hit"
    assert "the ledger is closed by people" in denied.value.message
    client = openai.OpenAI(base_url=gateway.base_url, api_key=TEST_KEY, timeout=30)
    with pytest.raises(openai.APIStatusError) as streamed:  # a stream hit is held before any byte
        list(
            client.chat.completions.create(
                model="gpt-test",
                messages=[{"role": "user", "content": pay}],
                temperature=0,
                tools=TOOLS,
                stream=True,
            )
        )
    assert streamed.value.status_code == 409
    assert _sent(upstream) == 2


def test_a_hit_is_booked_at_zero_and_its_saving_is_reported(gateway: ServedApp, upstream: Any) -> None:
    run = f"run-{uuid.uuid4().hex[:12]}"
    headers = {"x-agent-id": "planner", "x-run-id": run}
    upstream.usage(1000, 200, times=2)
    content = f"What is the plan {uuid.uuid4().hex}"
    assert _chat(gateway, content, headers=headers).headers["x-wardgate-cache"] == "miss"
    assert _chat(gateway, content, headers=headers).headers["x-wardgate-cache"] == "hit"
    events = _admin(gateway, "GET", f"/admin/audit?run={run}&kind=call", AUDITOR_KEY).json()["data"]
    miss, hit = sorted(events, key=lambda e: e["ts"])
    paid = miss["cost"]["settled_usd"]
    assert paid == pytest.approx(1000 * 2.5e-6 + 200 * 10e-6)
    assert miss["cache"] == {"status": "miss", "mode": "exact", "scope": "team", "stored": True}
    assert hit["cost"]["settled_usd"] == 0 and hit["cost"]["basis"] == "cache_hit"
    assert hit["cache"]["status"] == "hit" and hit["cache"]["saved_usd"] == pytest.approx(paid)
    assert hit["usage"] is None and hit["model"]["used"] == miss["model"]["used"]
    report = _admin(gateway, "GET", f"/admin/spend/report?group_by=run&run={run}", AUDITOR_KEY).json()
    [row] = report["data"]
    assert row["calls"] == 2 and row["cost_usd"] == pytest.approx(paid)
    assert row["cache"] == {"hits": 1, "lookups": 2, "hit_ratio": 0.5, "saved_usd": pytest.approx(paid)}
    by_agent = _admin(gateway, "GET", "/admin/spend/report?group_by=agent&agent=planner", AUDITOR_KEY).json()
    assert by_agent["data"][0]["cache"]["hits"] >= 1
    metrics = _admin(gateway, "GET", "/metrics").text
    assert 'wardgate_cache_lookups_total{model="gpt-test",result="hit",team="test"}' in metrics
    assert 'wardgate_cache_saved_usd_total{model="gpt-test",team="test"}' in metrics
    spend = _admin(gateway, "GET", f"/admin/spend?scope=run&id={run}&team=test", AUDITOR_KEY)
    assert spend.status_code == 200
