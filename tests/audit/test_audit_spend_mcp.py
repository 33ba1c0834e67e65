"""Priced MCP tool calls in the spend report (PostgreSQL): the rollup folds model calls only, so
the report reads the tool charges of its whole hours from their events; with the rollup and
from every event the numbers are the same, and a tool charge counts in ``cost_usd`` and in
``mcp`` but not in ``calls``."""

from __future__ import annotations

import random
import time
from typing import Any

from gateway.audit.events import build_record_event
from gateway.audit.store.base import Filters
from gateway.audit.store.postgres import PostgresStore
from tests.audit.test_audit_spend_rollup import DAY, _append, _both, _by_group, _events


def _tool_charge(ts: float, team: str, key: str, nusd: int) -> dict[str, Any]:
    payload = {
        "request_id": f"mcp_{int(ts * 1000)}",
        "principal": {"key_id": key, "team": team},
        "agent": {"id": "agent-1", "run_id": "run-1", "parent_run_id": None},
        "decision": "allow",
        "mcp": {
            "server": "payments",
            "method": "tools/call",
            "target": "transfer_funds",
            "cost_usd": nusd / 1e9,
        },
        "cost": {"settled_usd": nusd / 1e9, "settled_nusd": nusd},
    }
    return build_record_event("mcp", payload, ts=ts)


async def test_tool_charges_are_in_the_report_with_and_without_the_rollup(
    pg_dsn: str, pg_schema: str
) -> None:
    store = PostgresStore(pg_dsn, pg_schema, pool_size=2)
    await store.open()
    try:
        rng, now = random.Random(11), time.time()
        charges = [
            _tool_charge(now - i * 3 * 3600 - 600.5, f"team-{i % 3}", f"key-{i % 11}", 400_000_000)
            for i in range(12)
        ]
        await _append(store, sorted(_events(rng, 300, now) + charges, key=lambda e: e["ts"]))
        window = Filters(since=now - 7 * DAY - 1234.5, until=now - 77.25)
        for group_by in ("team", "key"):
            fast, slow = await _both(store, lambda g=group_by: store.spend(g, window))
            assert _by_group(fast) == _by_group(slow), group_by
            assert sum(r["tool_calls"] for r in fast) == 12
            assert sum(r["tool_cost_nusd"] for r in fast) == 12 * 400_000_000
        model_calls = sum(r["calls"] for r in await store.spend("team", Filters()))
        assert model_calls == 300  # a tool charge is not a model call
    finally:
        await store.close()
