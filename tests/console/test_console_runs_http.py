"""The run explorer and the audit, spend and keys pages over plain HTTP: roles, 404s, bad
input, escaping. The browser tests drive the same pages in Chromium."""

from __future__ import annotations

import html
import re
import uuid
from pathlib import Path

import openai

from gateway.audit.component import Audit
from gateway.audit.config import AuditSettings
from gateway.audit.service import AuditService
from gateway.audit.store import make_store
from tests.harness import ADMIN_KEY, APPROVER_KEY, AUDITOR_KEY, TEST_KEY, RunningGateway

XSS_AGENT = '<script>alert("agent")</script>'


def _call(
    gw: RunningGateway, run: str, agent: str = "planner", model: str = "gpt-test", **extra: str
) -> None:
    client = openai.OpenAI(
        base_url=gw.base_url,
        api_key=TEST_KEY,
        max_retries=0,
        default_headers={"x-run-id": run, "x-agent-id": agent, **extra},
    )
    try:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}])
    except openai.PermissionDeniedError:
        pass


def test_runs_are_found_and_a_run_shows_its_steps_and_why(console_gateway, as_role) -> None:
    run = f"run-{uuid.uuid4().hex[:8]}"
    _call(console_gateway, run)
    _call(console_gateway, run, agent="worker", **{"x-parent-run-id": "run-parent"})
    auditor = as_role(AUDITOR_KEY)
    listing = auditor.get("/console/runs", params={"agent": "worker", "window": "1h"})
    assert listing.status_code == 200 and f">{run}</a>" in listing.text
    page = auditor.get(f"/console/runs/{run}")
    assert page.status_code == 200, page.text
    text = page.text
    assert "Why: what the policy saw and did" in text and "policy_request" in text
    # the why panel loads on demand: a fragment for htmx, a page when followed as a link
    why = re.search(r'hx-get="(/console/why/[^"]+)"', text)
    assert why and "Input summary" not in text
    url = html.unescape(why.group(1))
    fragment = auditor.get(url, headers={"hx-request": "true"})
    assert fragment.status_code == 200 and "Input summary" in fragment.text and "<html" not in fragment.text
    full = auditor.get(url)
    assert full.status_code == 200 and "Input summary" in full.text and "<html" in full.text
    assert f'href="/console/runs/{run}"' in full.text
    event_path = url.split("?")[0]
    assert auditor.get(event_path + "?decision=99").status_code == 404
    assert auditor.get("/console/why/ev_nope?decision=0").status_code == 404
    assert auditor.get(event_path.replace("/why/", "/capture/")).status_code == 404  # capture is off
    assert "<code>planner</code>" in text and "<code>worker</code>" in text
    assert 'href="/console/runs/run-parent"' in text


async def _inject(gw: RunningGateway, payload: dict) -> None:
    """An event written by another process on the same store (the proxy refuses such ids in
    headers; other writers, e.g. an orchestrator's approval comment, are not so strict)."""
    live = gw.component(Audit).service
    settings = AuditSettings(backend="sqlite", sqlite_path=live.store.path)
    other = AuditService(settings, make_store(settings, Path(".")))
    await other.start()
    try:
        await other.record("approval", payload)
    finally:
        await other.close()


async def test_agent_ids_and_comments_show_literally(console_gateway, as_role) -> None:
    run = f"run-{uuid.uuid4().hex[:8]}"
    await _inject(console_gateway, {"agent_id": XSS_AGENT, "run_id": run, "comment": "[conceal] <b>x</b>"})
    text = as_role(AUDITOR_KEY).get(f"/console/runs/{run}").text
    assert XSS_AGENT not in text and "&lt;script&gt;alert(" in text
    assert "<b>x</b>" not in text and "[conceal] &lt;b&gt;x&lt;/b&gt;" in text


def test_unknown_runs_are_404_pages_and_bad_filters_400(as_role) -> None:
    auditor = as_role(AUDITOR_KEY)
    r = auditor.get("/console/runs/no-such-run")
    assert r.status_code == 404 and "no-such-run" in r.text and "Traceback" not in r.text
    assert auditor.get("/console/runs", params={"outcome": "weird"}).status_code == 400
    assert auditor.get("/console/runs", params={"tema": "x"}).status_code == 400


def test_approvers_may_not_explore_runs_admins_may(as_role) -> None:
    assert as_role(APPROVER_KEY).get("/console/runs").status_code == 403
    assert as_role(ADMIN_KEY).get("/console/runs").status_code == 200
    assert as_role(None).get("/console/runs").status_code == 303


def test_spend_page_has_chart_data_and_top_spenders(console_gateway, as_role) -> None:
    _call(console_gateway, f"run-{uuid.uuid4().hex[:8]}")
    page = as_role(AUDITOR_KEY).get("/console/spend", params={"window": "24h", "group_by": "key"})
    assert page.status_code == 200, page.text
    assert 'id="spend-chart"' in page.text and "data-chart=" in page.text and "&#34;series&#34;" in page.text
    assert "<td>test</td>" in page.text  # the agent key's id among the top spenders
    assert "uplot.iife.min.js" in page.text and 'integrity="sha384-' in page.text
    assert as_role(APPROVER_KEY).get("/console/spend").status_code == 403
    assert as_role(AUDITOR_KEY).get("/console/spend", params={"group_by": "x"}).status_code == 400


def test_audit_search_pages_exports_and_shows_one_event(console_gateway, as_role) -> None:
    run = f"run-{uuid.uuid4().hex[:8]}"
    for _ in range(2):
        _call(console_gateway, run)
    auditor = as_role(AUDITOR_KEY)
    page = auditor.get("/console/audit", params={"run": run, "order": "asc"})
    assert page.status_code == 200 and page.text.count(f">{run}</a>") == 2
    exported = auditor.get("/console/audit/export", params={"run": run, "format": "jsonl"})
    assert exported.status_code == 200 and exported.text.count(f'"run_id":"{run}"') == 2
    event_id = page.text.split("/console/audit/events/")[1].split('"')[0]
    one = auditor.get(f"/console/audit/events/{event_id}")
    assert one.status_code == 200 and "Previous hash" in one.text
    assert auditor.get("/console/audit/events/ev_nope").status_code == 404
    assert auditor.get("/console/audit", params={"decision": "maybe"}).status_code == 400
    assert as_role(APPROVER_KEY).get("/console/audit").status_code == 403


def test_verify_from_the_chains_page_needs_csrf_and_reports(as_role) -> None:
    auditor = as_role(AUDITOR_KEY)
    assert auditor.post("/console/audit/chains/verify", csrf="forged").status_code == 403
    done = auditor.post("/console/audit/chains/verify")
    assert done.status_code == 303
    page = auditor.get("/console/audit/chains")
    assert "Last verified" in page.text and "intact" in page.text and "by auditor" in page.text


def test_keys_are_created_shown_once_and_revoked_by_admins_only(console_gateway, as_role) -> None:
    admin = as_role(ADMIN_KEY)
    assert admin.post("/console/keys/create", {"team": "console-made"}, csrf="forged").status_code == 403
    made = admin.post("/console/keys/create", {"team": "console-made", "id": "made-1", "user": "<b>u</b>"})
    assert made.status_code == 201, made.text
    key = made.text.split('id="new-key"><code>')[1].split("<")[0]
    assert key.startswith("wg-") and "&lt;b&gt;u&lt;/b&gt;" in made.text
    listing = admin.get("/console/keys")
    assert "made-1" in listing.text and key not in listing.text  # never shown again
    ok = openai.OpenAI(base_url=console_gateway.base_url, api_key=key, max_retries=0)
    ok.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    assert admin.post("/console/keys/made-1/revoke", csrf="").status_code == 403
    assert admin.post("/console/keys/made-1/revoke").status_code == 200
    assert "revoked" in admin.get("/console/keys").text
    assert admin.post("/console/keys/nope/revoke").status_code == 404
    assert admin.post("/console/keys/create", {"team": "console-made", "id": "made-1"}).status_code == 409
    for key_ in (AUDITOR_KEY, APPROVER_KEY):
        other = as_role(key_)
        assert other.get("/console/keys").status_code == 403
        assert other.post("/console/keys/create", {"team": "x"}).status_code == 403


def test_policies_page_and_try_a_decision(as_role) -> None:
    admin = as_role(ADMIN_KEY)
    page = admin.get("/console/policies")
    assert page.status_code == 200 and "request.rego" in page.text and "Try a decision" in page.text
    doc = (
        '{"version": 1, "principal": {"key_id": "k", "team": "demo", "roles": []},'
        ' "request": {"model": "gpt-4o", "tools": [], "tool_results": [], "messages": []},'
        ' "pii": {"entities": {}}, "time": {"weekday": "Monday", "hour": 10}}'
    )
    tried = admin.post("/console/policies/try", {"phase": "request", "input": doc})
    assert (
        tried.status_code == 200 and "is not allowed for team" in tried.text and "outcome-deny" in tried.text
    )
    bad = admin.post("/console/policies/try", {"phase": "request", "input": "{nope"})
    assert bad.status_code == 400 and "not JSON" in bad.text
    assert as_role(AUDITOR_KEY).get("/console/policies").status_code == 403


def test_console_reads_of_audit_data_are_audited_like_the_api(console_gateway, as_role) -> None:
    run = f"run-{uuid.uuid4().hex[:8]}"
    _call(console_gateway, run)
    auditor = as_role(AUDITOR_KEY)
    assert auditor.get(f"/console/runs/{run}").status_code == 200
    found = auditor.get("/console/audit/export", params={"kind": "audit_read", "format": "jsonl"}).text
    assert f'"path":"/console/runs/{run}"' in found and '"admin_key_id":"auditor"' in found
