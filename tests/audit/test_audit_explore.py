"""The console's read models over the audit store, on SQLite and PostgreSQL: run search,
sub-runs, spend series."""

from __future__ import annotations

import pytest
from audit_helpers import finish, make_call

from gateway.audit import explore
from gateway.audit.schema import NANO
from gateway.audit.stage import AuditStage
from gateway.audit.store.base import Filters

T0 = 1_750_000_000.0

#: (team, key, agent, run, parent run, outcome, cost) started at T0 + 60 * i
ROWS = [
    ("team-a", "key-a", "planner", "run-1", None, "allow", 0.5),
    ("team-a", "key-a", "planner", "run-1", None, "deny", 0.0),
    ("team-a", "key-a", "worker", "run-1b", "run-1", "allow", 0.25),
    ("team-b", "key-b", "billing", "run-2", None, "allow", 1.0),
    ("team-b", "key-b", "billing", "run-2", None, "failed", None),
    ("team-b", "key-b", "billing", "run_3%", None, "allow", 0.125),
]


@pytest.fixture
async def store(make_service):
    service = await make_service()
    stage = AuditStage(service)
    for i, (team, key, agent, run, parent, outcome, cost) in enumerate(ROWS):
        call = make_call(
            team=team, key_id=key, agent=agent, run=run, outcome=outcome, cost=cost, started=T0 + 60 * i
        )
        call.parent_run_id = parent
        await finish(stage, call)
    return service.store


async def test_runs_are_found_newest_first_with_their_outcome(store):
    runs = await explore.find_runs(store, Filters(since=T0 - 1))
    assert [r.run_id for r in runs] == ["run_3%", "run-2", "run-1b", "run-1"]
    by_id = {r.run_id: r for r in runs}
    assert by_id["run-1"].outcome == "denied" and by_id["run-1"].calls == 2
    assert by_id["run-2"].outcome == "error" and by_id["run-2"].cost_usd == pytest.approx(1.0)
    assert by_id["run-1"].agents == ("planner",) and by_id["run-1"].team == "team-a"
    assert by_id["run-1b"].outcome == "clean"


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"outcome": "denied"}, ["run-1"]),
        ({"outcome": "error"}, ["run-2"]),
        ({"outcome": "clean"}, ["run_3%", "run-1b"]),
        ({"team": "team-b"}, ["run_3%", "run-2"]),
        ({"agent_id": "worker"}, ["run-1b"]),
        ({"until": T0 + 150}, ["run-1b", "run-1"]),
    ],
)
async def test_run_search_filters(store, params, expected):
    params = dict(params)
    outcome = params.pop("outcome", None)
    runs = await explore.find_runs(store, Filters(since=T0 - 1, **params), outcome=outcome)
    assert [r.run_id for r in runs] == expected


async def test_run_search_pages_by_last_activity(store):
    first = await explore.find_runs(store, Filters(since=T0 - 1), limit=2)
    rest = await explore.find_runs(store, Filters(since=T0 - 1), before=first[-1].last, limit=2)
    assert [r.run_id for r in first + rest] == ["run_3%", "run-2", "run-1b", "run-1"]


async def test_sub_runs_are_found_by_their_parent(store):
    kids = await explore.children(store, "run-1", T0, T0 + 60)
    assert [k["run_id"] for k in kids] == ["run-1b"] and kids[0]["agent_id"] == "worker"
    # LIKE wildcards in a run id match only themselves.
    assert await explore.children(store, "run_3%", T0, T0 + 600) == []
    assert await explore.children(store, "run-%", T0, T0 + 600) == []


async def test_spend_series_buckets_cost_per_group(store):
    series = await explore.spend_series(store, "team", Filters(since=T0, until=T0 + 3600), bucket_s=300)
    assert series["bucket_s"] == 300 and series["buckets"][0] == (T0 // 300) * 300
    assert sum(series["series"]["team-a"]) == pytest.approx(0.75)
    assert sum(series["series"]["team-b"]) == pytest.approx(1.125)
    assert series["calls"] == {"team-a": 3, "team-b": 3}
    assert len(series["buckets"]) == len(series["series"]["team-a"])
    by_key = await explore.spend_series(store, "key", Filters(since=T0, until=T0 + 3600, team="team-a"))
    assert set(by_key["series"]) == {"key-a"}
    assert round(sum(by_key["series"]["key-a"]) * NANO) == round(0.75 * NANO)


def test_bucket_width_keeps_charts_small():
    assert explore.bucket_for(0, 3600) == 60
    assert explore.bucket_for(0, 86400) == 900
    assert explore.bucket_for(0, 30 * 86400) == 86400
