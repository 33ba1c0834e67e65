"""The admin audit API: filters, cursor paging, timeline, spend report, export, roles, bad input."""

from __future__ import annotations

import csv
import io
import time

import httpx
import orjson
import pytest
from audit_helpers import ADMIN, APPROVER, AUDITOR, build_app, finish, make_call

from gateway.audit.schema import NANO
from gateway.audit.stage import AuditStage

T0 = 1_750_000_000.0  # fixed start times make time filters exact


#: (team, key, agent, run, model, outcome, cost, tokens) -- started at T0 + i seconds
ROWS = [
    ("team-a", "key-a", "agent-1", "run-1", "gpt-4o-mini", "allow", 0.0011, (100, 10)),
    ("team-a", "key-a", "agent-1", "run-1", "gpt-4o-mini", "deny", 0.0, (0, 0)),
    ("team-a", "key-a2", "agent-1", "run-1", "gpt-4o", "allow", 0.0123, (300, 40)),
    ("team-b", "key-b", "agent-2", "run-2", "gpt-4o", "allow", 0.0207, (500, 70)),
    ("team-b", "key-b", "agent-2", "run-2", "gpt-4o", "failed", None, (0, 0)),
    ("team-b", "key-b", "agent-2", "run-3", "gpt-4o-mini", "allow", 0.00031, (40, 5)),
    ("team-c", "key-c", None, None, "gpt-4o-mini", "allow", 0.000017, (7, 3)),
]


@pytest.fixture
async def filled(make_service):
    service = await make_service()
    stage = AuditStage(service)
    calls = []
    for i, (team, key, agent, run, model, outcome, cost, tokens) in enumerate(ROWS):
        call = make_call(
            team=team,
            key_id=key,
            agent=agent,
            run=run,
            model=model,
            outcome=outcome,
            cost=cost,
            tokens=tokens,
            started=T0 + i,
        )
        await finish(stage, call)
        calls.append(call)
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(service)),
        base_url="http://gw",
        headers={"authorization": f"Bearer {AUDITOR}"},
    )
    yield service, calls, client
    await client.aclose()


async def _ids(client, **params) -> list[str]:
    r = await client.get("/admin/audit", params={"kind": "call", **params})
    assert r.status_code == 200, r.text
    return [ev["request_id"] for ev in r.json()["data"]]


async def test_filters_by_team_key_agent_run_decision_model_and_time(filled):
    _, calls, client = filled
    rid = [c.request_id for c in calls]
    assert await _ids(client, team="team-b") == [rid[5], rid[4], rid[3]]
    assert await _ids(client, key="key-a2") == [rid[2]]
    assert await _ids(client, agent="agent-1") == [rid[2], rid[1], rid[0]]
    assert await _ids(client, run="run-2") == [rid[4], rid[3]]
    assert await _ids(client, decision="deny") == [rid[1]]
    assert await _ids(client, decision="error") == [rid[4]]
    assert set(await _ids(client, model="gpt-4o")) == {rid[2], rid[3], rid[4]}
    assert set(await _ids(client, model="gpt-4o-2024-07-18")) == {rid[2], rid[3]}  # the model used
    assert await _ids(client, **{"from": str(T0 + 2), "to": "2025-06-15T15:06:44Z"}) == [rid[3], rid[2]]
    assert await _ids(client, team="team-a", decision="allow", model="gpt-4o-mini") == [rid[0]]


@pytest.mark.parametrize("order", ["desc", "asc"])
async def test_cursor_paging_walks_every_event_once_in_order(filled, order):
    _, calls, client = filled
    seen, cursor, pages = [], None, 0
    while True:
        params = {"kind": "call", "limit": "2", "order": order} | ({"cursor": cursor} if cursor else {})
        doc = (await client.get("/admin/audit", params=params)).json()
        seen += [ev["request_id"] for ev in doc["data"]]
        pages += 1
        cursor = doc["next_cursor"]
        if cursor is None:
            break
    expected = [c.request_id for c in calls]
    assert seen == (expected[::-1] if order == "desc" else expected) and pages == 4


@pytest.mark.parametrize(
    "params,param",
    [
        ({"limit": "ten"}, "limit"),
        ({"limit": "0"}, "limit"),
        ({"limit": "100000"}, "limit"),
        ({"from": "yesterday"}, "from"),
        ({"to": "nan"}, "to"),
        ({"decision": "maybe"}, "decision"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"order": "sideways"}, "order"),
        ({"tema": "a"}, "tema"),
        ({"from": "2025-01-02", "to": "2025-01-01"}, "to"),
    ],
)
async def test_bad_query_parameters_get_an_openai_shaped_400(filled, params, param):
    _, _, client = filled
    r = await client.get("/admin/audit", params=params)
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == param and err["message"]


async def test_cursor_from_the_other_order_is_refused(filled):
    _, _, client = filled
    doc = (await client.get("/admin/audit", params={"limit": "1"})).json()
    r = await client.get("/admin/audit", params={"limit": "1", "order": "asc", "cursor": doc["next_cursor"]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "cursor"


async def test_roles_auditor_and_admin_read_approver_and_anonymous_cannot(filled):
    _, _, client = filled
    assert (await client.get("/admin/audit", headers={"authorization": f"Bearer {ADMIN}"})).status_code == 200
    r = await client.get("/admin/audit", headers={"authorization": f"Bearer {APPROVER}"})
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"
    assert (await client.get("/admin/audit", headers={"authorization": ""})).status_code == 401
    assert (
        await client.get("/admin/spend/report", headers={"authorization": "Bearer nope"})
    ).status_code == 401
    # read-only: no write verbs exist on the audit routes
    assert (await client.post("/admin/audit")).status_code == 405
    assert (await client.delete(f"/admin/audit/{'x' * 10}")).status_code == 405


async def test_get_one_event_by_id_with_hash_and_404_for_unknown(filled):
    _, _, client = filled
    first = (await client.get("/admin/audit", params={"limit": "1"})).json()["data"][0]
    r = await client.get(f"/admin/audit/{first['id']}")
    assert r.status_code == 200 and r.json() == first and len(first["hash"]) == 64
    r = await client.get("/admin/audit/ev_doesnotexist")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


async def test_run_timeline_lists_the_runs_calls_in_order_with_totals(filled):
    service, calls, client = filled
    await service.record(
        "approval",
        {"id": "apr_9", "status": "approved", "reviewer": "bob", "run_id": "run-1", "agent_id": "agent-1"},
    )
    doc = (await client.get("/admin/runs/run-1")).json()
    steps = doc["steps"]
    assert [s["request_id"] for s in steps[:3]] == [c.request_id for c in calls[:3]]
    assert steps[3]["kind"] == "approval" and steps[3]["data"]["reviewer"] == "bob"
    assert [s["decision"] for s in steps[:3]] == ["allow", "deny", "allow"]
    assert steps[0]["tool_calls"] == [{"id": "call_1", "name": "send_email"}]
    assert steps[1]["decisions"][0]["reasons"] == ["model not allowed for team"]
    sm = doc["summary"]
    assert sm["calls"] == 3 and sm["denied"] == 1 and sm["input_tokens"] == 400 and sm["output_tokens"] == 50
    assert sm["cost_usd"] == (round(0.0011 * NANO) + round(0.0123 * NANO)) / NANO
    assert doc["agent_ids"] == ["agent-1"] and doc["parent_run_ids"] == ["run-0"]
    assert (await client.get("/admin/runs/no-such-run")).status_code == 404


async def test_spend_report_sums_equal_the_settled_cost_of_the_calls(filled):
    _, calls, client = filled
    for group_by, attr in (
        ("team", lambda c: c.principal.team),
        ("key", lambda c: c.principal.key_id),
        ("agent", lambda c: c.agent_id),
        ("model", lambda c: c.model),
        ("run", lambda c: c.run_id),
    ):
        doc = (await client.get("/admin/spend/report", params={"group_by": group_by, "window": "all"})).json()
        expected: dict = {}
        for c in calls:
            e = expected.setdefault(attr(c), [0, 0, 0])
            e[0] += 1
            e[1] += round((c.cost_usd or 0) * NANO)
            e[2] += c.usage.input_tokens if c.usage else 0
        got = {
            row["group"]: [row["calls"], round(row["cost_usd"] * NANO), row["input_tokens"]]
            for row in doc["data"]
        }
        assert got == expected, group_by
        assert doc["total"]["cost_usd"] == sum(round((c.cost_usd or 0) * NANO) for c in calls) / NANO
    doc = (await client.get("/admin/spend/report", params={"group_by": "team", "from": str(T0 + 3)})).json()
    assert {r["group"] for r in doc["data"]} == {"team-b", "team-c"}
    r = await client.get("/admin/spend/report", params={"group_by": "planet"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "group_by"
    r = await client.get("/admin/spend/report", params={"window": "fortnight"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "window"


async def test_spend_report_window_counts_only_recent_calls(make_service):
    service = await make_service()
    stage = AuditStage(service)
    await finish(stage, make_call(team="old", started=time.time() - 3 * 86400))
    await finish(stage, make_call(team="new"))
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=build_app(service)),
        base_url="http://gw",
        headers={"authorization": f"Bearer {AUDITOR}"},
    )
    async with client:
        doc = (await client.get("/admin/spend/report", params={"window": "24h"})).json()
        assert [r["group"] for r in doc["data"]] == ["new"]
        doc = (await client.get("/admin/spend/report", params={"window": "7d"})).json()
        assert {r["group"] for r in doc["data"]} == {"new", "old"}


async def test_export_jsonl_and_csv_stream_every_matching_event(filled):
    _, calls, client = filled
    r = await client.get("/admin/audit/export", params={"format": "jsonl", "kind": "call"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
    lines = [orjson.loads(line) for line in r.content.splitlines()]
    assert [ev["request_id"] for ev in lines] == [c.request_id for c in calls]
    r = await client.get("/admin/audit/export", params={"format": "csv", "team": "team-b"})
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert [row["request_id"] for row in rows] == [c.request_id for c in calls[3:6]]
    assert rows[0]["team"] == "team-b" and rows[0]["cost_usd"] == "0.0207" and len(rows[0]["hash"]) == 64
    assert (await client.get("/admin/audit/export", params={"format": "xml"})).status_code == 400


@pytest.mark.parametrize(
    "path,params",
    [
        ("/admin/audit", {"team": "a\x00b"}),
        ("/admin/audit", {"model": "x" * 300}),
        ("/admin/audit/ev_%00x", {}),
        ("/admin/runs/run%00x", {}),
        ("/admin/spend/report", {"team": "\x00"}),
        ("/admin/audit/export", {"run": "\x00"}),
    ],
)
async def test_nul_bytes_and_oversized_values_are_a_400_not_a_database_error(filled, path, params):
    _, _, client = filled
    r = await client.get(path, params=params)
    assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error"
