"""Semantic mode through the real gateway and the openai SDK: a team's policy turns it on
(``cache: {mode: semantic, threshold}``); paraphrases hit above the threshold and miss below
it, another context or another team never hits, a hit restores the caller's own values and
is audited with its similarity and saving; chat and responses, stream and not."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import yaml

from gateway.http.launch import ServedApp
from tests.cache.conftest import SECOND_KEY, cache_settings, serve_with_clock
from tests.harness import ADMIN_KEY, AUDITOR_KEY, OTHER_TEAM_KEY, TEST_KEY
from tests.waiting import FakeClock


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream: Any) -> Iterator[ServedApp]:
    """Team ``test``: semantic at a threshold of 0.9; team ``other``: at 0.85."""
    root = tmp_path_factory.mktemp("semantic")
    settings = cache_settings(
        root, fake_upstream.base_url, cache={"semantic_preload": True}, approvals={"enabled": False}
    )
    path = settings.policies_dir / "policy.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["teams"]["test"] = {"models": ["*"], "cache": {"mode": "semantic", "threshold": 0.9}}
    doc["teams"]["other"] = {"models": ["*"], "cache": {"mode": "semantic", "threshold": 0.85}}
    path.write_text(yaml.safe_dump(doc))
    with serve_with_clock(settings, FakeClock()) as served:
        served.policies_dir = settings.policies_dir  # type: ignore[attr-defined]
        yield served


def _session() -> dict[str, str]:
    """A system turn of its own: each test is its own context (nothing shared across tests)."""
    return {"role": "system", "content": f"Session {uuid.uuid4().hex}"}


def _chat(gw: ServedApp, system: dict[str, str], text: str, key: str = TEST_KEY, **kw: Any) -> Any:
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, timeout=30)
    return client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[system, {"role": "user", "content": text}], temperature=0, **kw
    )


def _status(raw: Any) -> str:
    return str(raw.headers["x-wardgate-cache"])


def _text(raw: Any) -> str:
    return str(raw.parse().choices[0].message.content)


def _sent(upstream: Any) -> int:
    return len([r for r in upstream.requests if r.path.endswith(("/chat/completions", "/responses"))])


def _admin(gw: ServedApp, path: str, key: str = AUDITOR_KEY) -> Any:
    return httpx.get(gw.url + path, headers={"authorization": f"Bearer {key}"}, timeout=10).json()


def test_paraphrases_hit_above_the_threshold_and_miss_below(gateway: ServedApp, upstream: Any) -> None:
    session = _session()
    upstream.script_text("Run :q! to quit without saving.", times=1)
    first = _chat(gateway, session, "How do I install numpy?")
    assert _status(first) == "miss"
    # 0.995 similar: a hit at 0.9, with the stored answer.
    hit = _chat(gateway, session, "How can I install numpy?")
    assert _status(hit) == "hit" and _text(hit) == _text(first)
    # A near-duplicate of another intent (0.76): a miss, and its own answer.
    assert _status(_chat(gateway, session, "How do I uninstall numpy?")) == "miss"
    # A paraphrase 0.864 similar: below team test's 0.9, a miss ...
    assert _status(_chat(gateway, session, "How do I exit vim?")) == "miss"
    assert _status(_chat(gateway, session, "How can I quit vim?")) == "miss"
    # ... above team other's 0.85: a hit.
    other = _session()
    assert _status(_chat(gateway, other, "How do I exit vim?", key=OTHER_TEAM_KEY)) == "miss"
    assert _status(_chat(gateway, other, "How can I quit vim?", key=OTHER_TEAM_KEY)) == "hit"
    assert _sent(upstream) == 5


def test_another_context_or_another_number_never_hits(gateway: ServedApp, upstream: Any) -> None:
    session = _session()
    assert _status(_chat(gateway, session, "Show the top 5 customers by revenue.")) == "miss"
    assert _status(_chat(gateway, session, "List the top 5 customers by revenue.")) == "hit"
    # The same question in another conversation, with other parameters, or another number.
    assert _status(_chat(gateway, _session(), "List the top 5 customers by revenue.")) == "miss"
    assert _status(_chat(gateway, session, "List the top 5 customers by revenue.", max_tokens=50)) == "miss"
    assert _status(_chat(gateway, session, "Show the top 10 customers by revenue.")) == "miss"
    # 0.937 similar, but another number; the same words in another order (0.994): refused.
    assert _status(_chat(gateway, session, "Convert USD to EUR.")) == "miss"
    assert _status(_chat(gateway, session, "Convert EUR to USD.")) == "miss"
    assert _sent(upstream) == 6


def test_two_teams_never_share_even_an_identical_question(gateway: ServedApp, upstream: Any) -> None:
    session = _session()
    assert _status(_chat(gateway, session, "How can I reset my password?")) == "miss"
    assert _status(_chat(gateway, session, "How can I reset my password?", key=OTHER_TEAM_KEY)) == "miss"
    assert _status(_chat(gateway, session, "How do I reset my password?", key=OTHER_TEAM_KEY)) == "hit"
    assert _status(_chat(gateway, session, "How do I reset my password?")) == "hit"  # its own team's
    assert _sent(upstream) == 2


def test_a_hit_restores_the_callers_own_values_and_is_audited_with_its_similarity(
    gateway: ServedApp, upstream: Any
) -> None:
    session = _session()
    run = f"run-{uuid.uuid4().hex[:12]}"
    upstream.script_text("Sent the weekly report to <EMAIL_ADDRESS_1>.", times=1)
    upstream.usage(1000, 200, times=1)
    first = _chat(
        gateway, session, "Send the weekly report to ann@example.com.", extra_headers={"x-run-id": run}
    )
    assert _status(first) == "miss" and _text(first) == "Sent the weekly report to ann@example.com."
    second = _chat(
        gateway,
        session,
        "Send the weekly report to bob@example.org, please.",
        key=SECOND_KEY,
        extra_headers={"x-run-id": run},
    )
    assert _status(second) == "hit" and _text(second) == "Sent the weekly report to bob@example.org."
    events = _admin(gateway, f"/admin/audit?run={run}&kind=call")["data"]
    miss, hit = sorted(events, key=lambda e: e["ts"])
    assert miss["cache"] == {"status": "miss", "mode": "semantic", "scope": "team", "stored": True}
    assert hit["cache"]["status"] == "hit" and hit["cache"]["mode"] == "semantic"
    assert 0.9 <= hit["cache"]["similarity"] < 1.0
    assert hit["cost"]["settled_usd"] == 0 and hit["cache"]["saved_usd"] == pytest.approx(
        miss["cost"]["settled_usd"]
    )
    assert _sent(upstream) == 1
    stats = _admin(gateway, "/admin/cache")
    assert stats["semantic"]["loaded"] is True and stats["semantic"]["vectors"] >= 1
    assert stats["semantic"]["engine"] == "onnx-int8"  # the shipped default


def test_stream_and_responses_hit_on_a_paraphrase(gateway: ServedApp, upstream: Any) -> None:
    session = _session()
    client = openai.OpenAI(base_url=gateway.base_url, api_key=TEST_KEY, timeout=30)
    plain = _text(_chat(gateway, session, "Explain what a hash table is."))
    messages = [session, {"role": "user", "content": "Can you explain what a hash table is?"}]
    with client.chat.completions.with_streaming_response.create(
        model="gpt-test",
        messages=messages,
        temperature=0,
        stream=True,  # type: ignore[arg-type]
    ) as response:
        assert response.headers["x-wardgate-cache"] == "hit"
        streamed = "".join(c.choices[0].delta.content or "" for c in response.parse() if c.choices)
    assert streamed == plain
    instructions = f"Session {uuid.uuid4().hex}"
    first = client.responses.create(
        model="gpt-test", instructions=instructions, input="What time zone is Tokyo in?", temperature=0
    )
    raw = client.responses.with_raw_response.create(
        model="gpt-test", instructions=instructions, input="Which time zone does Tokyo use?", temperature=0
    )
    assert raw.headers["x-wardgate-cache"] == "hit" and raw.parse().output_text == first.output_text
    events = list(
        client.responses.create(
            model="gpt-test",
            instructions=instructions,
            input="Which time zone does Tokyo use?",
            temperature=0,
            stream=True,
        )
    )
    done = [e for e in events if e.type == "response.completed"]
    assert len(done) == 1 and done[0].response.output_text == first.output_text
    assert _sent(upstream) == 2


def test_purge_forgets_the_vectors(gateway: ServedApp, upstream: Any) -> None:
    session = _session()
    assert _status(_chat(gateway, session, "Who wrote Pride and Prejudice?", key=OTHER_TEAM_KEY)) == "miss"
    r = httpx.post(
        gateway.url + "/admin/cache/purge",
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
        json={"scope": "team:other"},
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["deleted"] >= 1
    assert (
        _status(_chat(gateway, session, "Who is the author of Pride and Prejudice?", key=OTHER_TEAM_KEY))
        == "miss"
    )


def test_a_semantic_hit_is_judged_by_the_response_policy_of_now(gateway: ServedApp, upstream: Any) -> None:
    session = _session()
    tools = [{"type": "function", "function": {"name": "close_ledger", "parameters": {"type": "object"}}}]
    upstream.script_tool_call("close_ledger", {"year": 2025}, times=1)
    assert _status(_chat(gateway, session, "Close the ledger for this year.", tools=tools)) == "miss"
    path = gateway.policies_dir / "policy.yaml"  # type: ignore[attr-defined]
    original = path.read_text()
    doc = yaml.safe_load(original)
    doc["high_stakes"]["close_ledger"] = {"deny": True, "reason": "the ledger is closed by people"}
    path.write_text(yaml.safe_dump(doc))
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    try:
        r = httpx.post(gateway.url + "/admin/policies/reload", headers=admin, timeout=60)
        assert r.json()["result"] in ("loaded", "unchanged")
        with pytest.raises(openai.PermissionDeniedError) as denied:  # 0.94 similar: a hit, denied now
            _chat(gateway, session, "Please close the ledger for this year.", tools=tools)
        assert denied.value.response.headers["x-wardgate-cache"] == "hit"
        assert "the ledger is closed by people" in denied.value.message
    finally:
        path.write_text(original)
        httpx.post(gateway.url + "/admin/policies/reload", headers=admin, timeout=60)
    assert _sent(upstream) == 1
