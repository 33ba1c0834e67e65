"""The gateway's audit timeline of a run lists every call the orchestrator made, in order,
with the agent, parent run and trace the headers carried. Depends on audit being wired.
"""

from __future__ import annotations

from pathlib import Path

from orchestrator.admin_client import AdminClient
from orchestrator.events import CallRecord, Listener
from tests.orchestrator.conftest import ORCH_ADMIN_KEY, make_config, run_reviewed


class Calls(Listener):
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def call_finished(self, record: CallRecord) -> None:
        self.records.append(record)


async def test_audit_timeline_of_the_run_lists_every_call_in_order(defer_gateway, tmp_path: Path):
    calls = Calls()
    report, _, _ = await run_reviewed(
        make_config(defer_gateway, tmp_path / "o.db"), listener=calls, parent_run_id="ticket-5531"
    )
    admin = AdminClient(defer_gateway.base_url, ORCH_ADMIN_KEY)
    try:
        timeline = await admin.run_timeline(report.run_id)
    finally:
        await admin.close()

    steps = [s for s in timeline["steps"] if s["kind"] == "call"]
    made = [(r.request_id, r.agent) for r in calls.records]
    # Every HTTP exchange (answered, denied 403, deferred 409) is in the timeline, once.
    assert sorted(s["request_id"] for s in steps) == sorted(rid for rid, _ in made)
    assert len(made) == len(steps) == timeline["summary"]["calls"]
    times = [s["time"] for s in timeline["steps"]]
    assert times == sorted(times)
    # Calls of one agent are sequential: the timeline has them in the order they were made.
    for agent in {a for _, a in made}:
        assert [s["request_id"] for s in steps if s["agent_id"] == agent] == [
            rid for rid, a in made if a == agent
        ]
    by_id = dict(made)
    assert all(s["agent_id"] == by_id[s["request_id"]] for s in steps)
    # Identity headers: X-Run-Id (the query), X-Parent-Run-Id, and one W3C trace for the run.
    assert timeline["parent_run_ids"] == ["ticket-5531"]
    assert {s["trace_id"] for s in steps} == {report.trace_id}
    assert set(timeline["agent_ids"]) == {
        "planner",
        "researcher",
        "billing",
        "accounts",
        "writer",
        "reviewer",
    }
    assert [s["decision"] for s in steps if s["agent_id"] == "accounts"] == ["deny"]
    assert [s["decision"] for s in steps if s["agent_id"] == "billing"][:1] == ["pending"]
