"""Settled spend pre-aggregated per hour (PostgreSQL): the spend page and report read
aggregates, not every call event of the window.

Migration v6 adds two tables (v7 empties them once: refolded with the daily rows):

    audit_spend_rollup  (dim, hour, grp) -> calls, tokens in/out, cost, cache hits, cache
                        lookups, saved: one row per hour per team / key / agent / model
                        (``grp``: ``'=' || value``, ``''`` for none), and one per day
                        (``dim`` ``team/day`` ..., ``hour`` the day's first hour), so a month
                        of daily buckets is 30 rows per group, not 720
    audit_spend_marks   shard -> the last ``seq`` of that chain already in the rollup

Maintenance is incremental, by watermark: ``refresh`` (run before every read) compares each
chain's head (``audit_heads``, moved in the same statement as its events) with its mark, and
folds the events in between into the rollup, then moves the marks, in one transaction under
an advisory lock (readers on every replica refresh; each event is counted once; a reader that
finds another folding does not wait: it reads the events, as without the rollup). A chain's
``seq`` only grows and its head commits with its events, so nothing is missed or counted
twice. The cache columns are read from each event's body once, here, instead of on every
report.

A read covers the window's whole hours from the rollup and its two partial hours from the
events themselves (``explore.spend_series``, ``PostgresStore.spend``), so the numbers are the
ones the events give. It answers unfiltered reads grouped by team / key / agent / model; any
other filter reads the events. Retention: ``apply_prune`` deletes the rollup's hours wholly
before the oldest event kept.
"""

from __future__ import annotations

import logging
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.audit.store.base import Filters

log = logging.getLogger("wardgate.audit")

#: Rollup dimensions: the spend groups it keeps, and their event columns.
DIMS = {"team": "team", "key": "key_id", "agent": "agent_id", "model": "model"}
HOUR = 3600
DAY = 86400
#: The daily rows of a dimension: ``dim`` + this, ``hour`` = the day's first hour.
DAY_SUFFIX = "/day"
_FAR = 2**62  # an unbounded side of a window, in hours
_LOCK = 5_747_420_082  # advisory lock of a refresh (the migration's is ...081)


def refold_ddl() -> list[str]:
    """Migration v7: the rollup gained daily rows; fold everything again (marks emptied)."""
    return ["DELETE FROM audit_spend_rollup", "DELETE FROM audit_spend_marks"]


def ddl() -> list[str]:
    return [
        """CREATE TABLE IF NOT EXISTS audit_spend_rollup (
            dim text NOT NULL, hour bigint NOT NULL, grp text NOT NULL,
            calls bigint NOT NULL, input_tokens bigint NOT NULL, output_tokens bigint NOT NULL,
            cost_nusd bigint NOT NULL, cache_hits bigint NOT NULL, cache_lookups bigint NOT NULL,
            saved_nusd bigint NOT NULL, PRIMARY KEY (dim, hour, grp))""",
        "CREATE TABLE IF NOT EXISTS audit_spend_marks (shard text PRIMARY KEY, seq bigint NOT NULL)",
    ]


_BEHIND = (
    "SELECT h.shard, coalesce(m.seq, -1), h.seq FROM audit_heads h "
    "LEFT JOIN audit_spend_marks m ON m.shard = h.shard WHERE h.seq > coalesce(m.seq, -1)"
)
_HAS_CACHE = """strpos(e.body, '"cache":{') > 0"""
_FOLD = f"""
WITH ev AS MATERIALIZED (
    -- one narrow row per call event (the body read once, here, only when it has a cache section)
    SELECT e.ts, e.team, e.key_id, e.agent_id, e.model, e.input_tokens, e.output_tokens, e.cost_nusd,
        CASE WHEN {_HAS_CACHE} THEN e.body::jsonb -> 'cache' ->> 'status' END AS status,
        CASE WHEN {_HAS_CACHE} THEN CAST(e.body::jsonb -> 'cache' ->> 'saved_nusd' AS bigint) END AS saved
    FROM audit_events e
    WHERE e.shard = $1::text AND e.seq > $2::bigint AND e.seq <= $3::bigint AND e.kind = 'call'
)
INSERT INTO audit_spend_rollup AS r
    (dim, hour, grp, calls, input_tokens, output_tokens, cost_nusd, cache_hits, cache_lookups, saved_nusd)
SELECT g.dim || t.suffix, (floor(ev.ts / t.width) * (t.width / {HOUR}))::bigint, coalesce('=' || g.grp, ''),
    count(*), coalesce(sum(ev.input_tokens), 0), coalesce(sum(ev.output_tokens), 0),
    coalesce(sum(ev.cost_nusd), 0),
    coalesce(sum(CASE WHEN ev.status = 'hit' THEN 1 ELSE 0 END), 0),
    coalesce(sum(CASE WHEN ev.status IN ('hit', 'miss') THEN 1 ELSE 0 END), 0),
    coalesce(sum(ev.saved), 0)
FROM ev
CROSS JOIN LATERAL (VALUES ('team', ev.team), ('key', ev.key_id), ('agent', ev.agent_id), ('model', ev.model))
    AS g(dim, grp)
CROSS JOIN LATERAL (VALUES ('', {HOUR}), ('{DAY_SUFFIX}', {DAY})) AS t(suffix, width)
GROUP BY 1, 2, 3
ON CONFLICT (dim, hour, grp) DO UPDATE SET
    calls = r.calls + excluded.calls, input_tokens = r.input_tokens + excluded.input_tokens,
    output_tokens = r.output_tokens + excluded.output_tokens, cost_nusd = r.cost_nusd + excluded.cost_nusd,
    cache_hits = r.cache_hits + excluded.cache_hits, cache_lookups = r.cache_lookups + excluded.cache_lookups,
    saved_nusd = r.saved_nusd + excluded.saved_nusd
"""
_MARK = (
    "INSERT INTO audit_spend_marks (shard, seq) SELECT * FROM unnest($1::text[], $2::bigint[]) "
    "ON CONFLICT (shard) DO UPDATE SET seq = excluded.seq"
)


def eligible(filters: Filters) -> bool:
    """Only a time window (and the call kind) filtered: what the rollup can answer."""
    rest = {k for k in filters.active() if k not in ("since", "until", "kind")}
    return not rest and filters.kind in (None, "call")


def grp_value(grp: str) -> str | None:
    return grp[1:] if grp else None


def hours(since: float | None, until: float | None) -> tuple[int | None, int | None]:
    """The whole hours inside ``[since, until)``: ``[first, end)`` (``None``: unbounded)."""
    first = math.ceil(since / HOUR) if since is not None else None
    end = math.floor(until / HOUR) if until is not None else None
    return first, end


def edges(since: float | None, until: float | None) -> list[tuple[float, float]]:
    """The parts of ``[since, until)`` outside its whole hours (read from the events)."""
    first, end = hours(since, until)
    if first is not None and end is not None and first >= end:
        return [(since, until)] if since is not None and until is not None and since < until else []
    out = []
    if since is not None and first is not None and since < first * HOUR:
        out.append((since, float(first * HOUR)))
    if until is not None and end is not None and end * HOUR < until:
        out.append((float(end * HOUR), until))
    return out


class SpendRollup:
    """The rollup over an asyncpg pool (``PostgresStore.rollup``)."""

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self._warned = False

    async def refresh(self) -> bool:
        """Fold the events committed since the marks into the rollup. ``False``: another
        reader is folding right now (a long first fold); this read does not wait for it and
        reads the events instead."""
        import asyncpg

        try:
            async with self.pool.acquire() as conn:
                if not await conn.fetch(_BEHIND):
                    return True
                async with conn.transaction():
                    if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1)", _LOCK):
                        return False
                    behind = await conn.fetch(_BEHIND)  # again, under the lock: another may have folded
                    for shard, done, upto in behind:  # one chain at a time: its (shard, seq) index range
                        await conn.execute(_FOLD, shard, done, upto)
                    if behind:
                        await conn.execute(_MARK, [r[0] for r in behind], [r[2] for r in behind])
                    return True
        except asyncpg.InsufficientPrivilegeError as exc:
            # A role granted before v6 (``audit grant --apply`` not re-run): read the events.
            if not self._warned:
                self._warned = True
                log.warning("audit: the spend rollup cannot be written (%s); spend reads the events", exc)
            return False

    async def rows(
        self, dim: str, since: float | None, until: float | None, bucket_s: int | None = None
    ) -> list[tuple[Any, ...]] | None:
        """The window's whole hours per group (and per ``bucket_s`` bucket when given):
        ``(bucket or None, group, calls, tokens in, tokens out, cost, hits, lookups, saved)``.
        Its whole days come from the daily rows when the buckets are whole days (or none).
        ``None``: the rollup is being folded by another reader (read the events)."""
        if not await self.refresh():
            return None
        first, end = hours(since, until)
        h0, h1 = first if first is not None else -_FAR, end if end is not None else _FAR
        d0 = math.ceil(since / DAY) * 24 if since is not None else -_FAR
        d1 = math.floor(until / DAY) * 24 if until is not None else _FAR
        if (bucket_s is not None and bucket_s % DAY) or d0 >= d1:
            d0 = d1 = h1  # no daily rows: every whole hour from the hourly ones
        bucket = f"floor(hour * {HOUR}.0 / {int(bucket_s)})::bigint" if bucket_s else "NULL::bigint"
        query = (
            f"SELECT {bucket}, grp, sum(calls), sum(input_tokens), sum(output_tokens), sum(cost_nusd), "
            "sum(cache_hits), sum(cache_lookups), sum(saved_nusd) FROM audit_spend_rollup "
            "WHERE (dim = $1 AND ((hour >= $3 AND hour < $4) OR (hour >= $5 AND hour < $6))) "
            "OR (dim = $2 AND hour >= $4 AND hour < $5) GROUP BY 1, 2"
        )
        params = [dim, dim + DAY_SUFFIX, h0, max(h0, min(d0, h1)), max(h0, min(d1, h1)), h1]
        return [
            (r[0], grp_value(r[1]), *(int(v) for v in r[2:])) for r in await self.pool.fetch(query, *params)
        ]

    async def prune(self, conn: Any, cutoff_ts: float) -> None:
        """Drop the hours wholly before ``cutoff_ts`` (their events are gone)."""
        await conn.execute(
            "DELETE FROM audit_spend_rollup WHERE hour < $1::bigint", math.floor(cutoff_ts / HOUR)
        )


#: The columns of a spend report row (``PostgresStore.spend``), in ``add_row``'s order.
SPEND_COLUMNS = (
    "calls",
    "input_tokens",
    "output_tokens",
    "cost_nusd",
    "cache_hits",
    "cache_lookups",
    "saved_nusd",
    "tool_calls",
    "tool_cost_nusd",
)


def add_row(merged: dict[Any, list[int]], group: Any, values: Any) -> None:
    """Add ``values`` (the first columns of ``SPEND_COLUMNS``) to ``group``'s sums."""
    row = merged.setdefault(group, [0] * len(SPEND_COLUMNS))
    for i, v in enumerate(values):
        row[i] += int(v)
