"""The hourly and daily spend rollup (PostgreSQL, gateway/audit/store/rollup.py) gives the numbers the
events give: the console's spend series and the spend report, per team / key / agent / model,
for windows that do not start or end on an hour, the same with the rollup as read from every
event; events appended after a read (a second chain) are folded in by the next read; a
filtered read still reads the events."""

from __future__ import annotations

import random
import time
from typing import Any

from bench.console_data import _event
from gateway.audit import explore
from gateway.audit.chain import ShardChain, new_shard_id
from gateway.audit.store import rollup
from gateway.audit.store.base import Filters
from gateway.audit.store.postgres import PostgresStore

DAY = 86400.0
GROUPS = ("team", "key", "agent", "model")


def _events(rng: random.Random, n: int, now: float) -> list[dict[str, Any]]:
    out = []
    for i in range(n):
        ev = _event(
            rng,
            now - rng.uniform(0, 35 * DAY),
            f"run-{i % 40}",
            f"agent-{i % 7}",
            f"team-{i % 3}",
            f"key-{i % 11}",
        )
        if i % 9 == 0:
            ev["agent"] = None  # no agent: the "(none)" group
        if i % 5 == 0:  # cache sections (what the report's hits, lookups and savings read)
            ev["cache"] = {
                "status": "hit" if i % 10 == 0 else "miss",
                "saved_nusd": 1234 if i % 10 == 0 else None,
            }
        out.append(ev)
    return sorted(out, key=lambda e: e["ts"])


async def _append(store: PostgresStore, events: list[dict[str, Any]]) -> None:
    chain = ShardChain(new_shard_id("rollup-test"))
    for i in range(0, len(events), 500):
        batch = chain.seal(events[i : i + 500])
        await store.append(chain.shard, batch.rows, batch.head)
        chain.advance(batch.head)


async def _both(store: PostgresStore, read: Any) -> tuple[Any, Any]:
    """``read()`` with the rollup, then from every event (the rollup switched off)."""
    fast = await read()
    rollup, store.rollup = store.rollup, None
    try:
        slow = await read()
    finally:
        store.rollup = rollup
    return fast, slow


def _by_group(rows: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
    return {r["group"]: r for r in rows}


async def _same_numbers(store: PostgresStore, now: float) -> None:
    for days in (7, 30):
        since, until = now - days * DAY - 1234.5, now - 77.25  # not on an hour
        for group_by in GROUPS:
            window = Filters(since=since, until=until)
            fast, slow = await _both(store, lambda g=group_by, w=window: explore.spend_series(store, g, w))
            assert fast["buckets"] == slow["buckets"] and fast["bucket_s"] == slow["bucket_s"]
            assert _by_group(fast["totals"]) == _by_group(slow["totals"]), (days, group_by)
            assert fast["calls"] == slow["calls"]
            assert fast["series"].keys() == slow["series"].keys()
            for name, line in slow["series"].items():
                assert [round(v, 9) for v in fast["series"][name]] == [round(v, 9) for v in line]
            report_fast, report_slow = await _both(store, lambda g=group_by, w=window: store.spend(g, w))
            assert _by_group(report_fast) == _by_group(report_slow), (days, group_by)
            assert [r["cost_nusd"] for r in report_fast] == [r["cost_nusd"] for r in report_slow]
    everything_fast, everything_slow = await _both(store, lambda: store.spend("team", Filters()))
    assert _by_group(everything_fast) == _by_group(everything_slow)


async def test_the_rollup_gives_the_numbers_of_the_events(pg_dsn: str, pg_schema: str) -> None:
    store = PostgresStore(pg_dsn, pg_schema, pool_size=2)
    await store.open()
    try:
        rng, now = random.Random(7), time.time()
        await _append(store, _events(rng, 3000, now))
        await _same_numbers(store, now)
        hits = sum(r["cache_hits"] for r in await store.spend("model", Filters()))
        assert hits == 300  # every tenth event was a cache hit
        folded = await store.pool.fetchval("SELECT sum(calls) FROM audit_spend_rollup WHERE dim = 'team'")
        assert folded == 3000
        days = await store.pool.fetchval("SELECT sum(calls) FROM audit_spend_rollup WHERE dim = 'team/day'")
        assert days == 3000  # the daily rows (whole days of daily buckets and of the report)
        # another chain appends after the first reads: the next read folds it in, once
        await _append(store, _events(rng, 700, now))
        await _same_numbers(store, now)
        assert (
            await store.pool.fetchval("SELECT sum(calls) FROM audit_spend_rollup WHERE dim = 'key'") == 3700
        )
        # a reader finding another folding does not wait: it reads the events (same numbers)
        await _append(store, _events(rng, 50, now))
        async with store.pool.acquire() as other, other.transaction():
            await other.execute("SELECT pg_advisory_xact_lock($1)", rollup._LOCK)
            assert await store.rollup.rows("team", None, None) is None
            fast, slow = await _both(
                store, lambda: store.spend("team", Filters(since=now - 30 * DAY, until=now))
            )
            assert _by_group(fast) == _by_group(slow) and sum(r["calls"] for r in fast) > 0
        assert await store.rollup.rows("team", None, None) is not None  # folded once the lock is free
        assert (
            await store.pool.fetchval("SELECT sum(calls) FROM audit_spend_rollup WHERE dim = 'key'") == 3750
        )
        # a filtered read reads the events (the rollup keeps one dimension at a time)
        team = Filters(since=now - 7 * DAY, until=now, team="team-1")
        fast, slow = await _both(store, lambda: store.spend("model", team))
        assert _by_group(fast) == _by_group(slow) and {r["calls"] for r in fast} != {0}
    finally:
        await store.close()
