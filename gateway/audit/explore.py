"""Read models for the console over the audit store: run search, run relations, spend series.

Everything here is a bounded query on the indexed columns (``ts``, ``kind``, ``team``,
``key_id``, ``agent_id``, ``run_id``, ``decision``, ``model``), rendered for the store's SQL
dialect with the same ``Where`` builder the audit API uses, so one filter means the same on
SQLite and PostgreSQL. Nothing reads message content: there is none in the events.

- ``find_runs``: runs (``run_id`` of call events) in a window, newest activity first, each
  with its agents, team, calls, denials, errors, pending approvals, cost, first and last call;
  ``outcome`` keeps the runs with a denial / an error / a pending approval / none of those.
- ``children``: runs whose calls name this run as their parent (``agent.parent_run_id``),
  found within the parent's time span by the canonical body's exact bytes.
- ``spend_series``: settled cost and tokens per time bucket and group (team, key, agent,
  model), for the spend charts.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.audit.schema import NANO
from gateway.audit.store.base import SPEND_GROUPS, AuditStore, Filters, QueryUnsupported
from gateway.audit.store.sql import Dialect, where

OUTCOMES = ("denied", "error", "pending", "clean")
#: Sub-runs may outlive their parent's last call by this much and still be found.
_CHILD_MARGIN_S = 3600.0
_MAX_SERIES_POINTS = 2000


@dataclass(frozen=True, slots=True)
class RunRow:
    run_id: str
    first: float
    last: float
    calls: int
    denied: int
    errors: int
    pending: int
    cost_usd: float
    agents: tuple[str, ...]
    team: str | None

    @property
    def outcome(self) -> str:
        if self.denied:
            return "denied"
        if self.errors:
            return "error"
        if self.pending:
            return "pending"
        return "clean"


async def _dialect(store: AuditStore) -> Dialect:
    """The store's dialect; a store that cannot be read raises its own ``QueryUnsupported``."""
    if not isinstance(store.dialect, Dialect):
        await store.select("", [])
        raise QueryUnsupported(f"The {store.name} audit backend cannot be read back.")
    return store.dialect


async def find_runs(
    store: AuditStore,
    filters: Filters,
    *,
    outcome: str | None = None,
    before: float | None = None,
    limit: int = 50,
) -> list[RunRow]:
    """Runs with calls matching ``filters``, most recently active first (``before``: paging)."""
    d = await _dialect(store)
    w = where(d, Filters(**{**filters.active(), "kind": "call"}))
    w.conds.append("run_id IS NOT NULL")
    having: list[str] = []
    if outcome == "denied":
        having.append("sum(CASE WHEN decision = 'deny' THEN 1 ELSE 0 END) > 0")
    elif outcome == "error":
        having.append("sum(CASE WHEN decision = 'error' THEN 1 ELSE 0 END) > 0")
    elif outcome == "pending":
        having.append("sum(CASE WHEN decision = 'pending' THEN 1 ELSE 0 END) > 0")
    elif outcome == "clean":
        having.append("sum(CASE WHEN decision IN ('deny', 'error', 'pending') THEN 1 ELSE 0 END) = 0")
    if before is not None:
        w.params.append(before)
        having.append(f"max(ts) < {d.ph(len(w.params), 'double')}")
    w.params.append(int(limit))
    limit_mark = d.ph(len(w.params), "bigint")
    agg = "string_agg(DISTINCT agent_id, ',')" if d.name == "postgres" else "group_concat(DISTINCT agent_id)"
    query = (
        "SELECT run_id, min(ts), max(ts), count(*), "
        "sum(CASE WHEN decision = 'deny' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN decision = 'error' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN decision = 'pending' THEN 1 ELSE 0 END), "
        f"coalesce(sum(cost_nusd), 0), {agg}, min(team) "
        f"FROM audit_events{w.sql()} GROUP BY run_id"
        + (f" HAVING {' AND '.join(having)}" if having else "")
        + f" ORDER BY 3 DESC, 1 LIMIT {limit_mark}"
    )
    rows = await store.select(query, w.params)
    return [
        RunRow(
            run_id=r[0],
            first=float(r[1]),
            last=float(r[2]),
            calls=int(r[3]),
            denied=int(r[4]),
            errors=int(r[5]),
            pending=int(r[6]),
            cost_usd=int(r[7]) / NANO,
            agents=tuple(sorted(a for a in (r[8] or "").split(",") if a)),
            team=r[9],
        )
        for r in rows
    ]


def _like_literal(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def children(
    store: AuditStore, run_id: str, first: float, last: float, limit: int = 50
) -> list[dict[str, Any]]:
    """Runs started under ``run_id`` (their calls carry it as ``parent_run_id``)."""
    d = await _dialect(store)
    needle = '"parent_run_id":' + orjson.dumps(run_id).decode()
    w = where(d, Filters(since=first, until=last + _CHILD_MARGIN_S, kind="call"))
    w.conds.append("run_id IS NOT NULL")
    w.add("run_id <> {}", (run_id, "text"))
    w.add("body LIKE {} ESCAPE '\\'", ("%" + _like_literal(needle) + "%", "text"))
    w.params.append(int(limit))
    mark = d.ph(len(w.params), "bigint")
    query = (
        f"SELECT run_id, min(agent_id), count(*), min(ts) FROM audit_events{w.sql()} "
        f"GROUP BY run_id ORDER BY 4 LIMIT {mark}"
    )
    rows = await store.select(query, w.params)
    return [{"run_id": r[0], "agent_id": r[1], "calls": int(r[2]), "first": float(r[3])} for r in rows]


def bucket_for(since: float, until: float) -> int:
    """A bucket width (seconds) giving at most ~100 points over the window."""
    span = max(until - since, 60.0)
    for width in (60, 300, 900, 3600, 3 * 3600, 6 * 3600, 86400, 7 * 86400):
        if span / width <= 100:
            return width
    return 30 * 86400


async def spend_series(
    store: AuditStore, group_by: str, filters: Filters, *, bucket_s: int | None = None
) -> dict[str, Any]:
    """Settled cost per bucket and group: ``{"bucket_s", "buckets": [ts...], "series": {group: [usd...]}}``."""
    d = await _dialect(store)
    col = SPEND_GROUPS[group_by]
    since = filters.since if filters.since is not None else time.time() - 30 * 86400
    until = filters.until if filters.until is not None else time.time()
    width = int(bucket_s or bucket_for(since, until))
    w = where(d, Filters(**{**filters.active(), "since": since, "kind": "call"}))
    # The width is an int we computed: a literal (SQLite binds ``?`` in text order, and this
    # one would come before the WHERE clause's).
    slot = (
        f"CAST(floor(ts / {width}) AS bigint)" if d.name == "postgres" else f"CAST(ts / {width} AS INTEGER)"
    )
    query = (
        f"SELECT {slot} AS b, {col}, coalesce(sum(cost_nusd), 0), count(*) "
        f"FROM audit_events{w.sql()} GROUP BY 1, 2 ORDER BY 1 LIMIT {_MAX_SERIES_POINTS * 20}"
    )
    rows = await store.select(query, w.params)
    first_bucket, last_bucket = int(since // width), int(until // width)
    if last_bucket - first_bucket > _MAX_SERIES_POINTS:
        first_bucket = last_bucket - _MAX_SERIES_POINTS
    index = {b: i for i, b in enumerate(range(first_bucket, last_bucket + 1))}
    series: dict[str, list[float]] = {}
    calls: dict[str, int] = {}
    for b, group, nusd, n in rows:
        i = index.get(int(b))
        if i is None:
            continue
        name = "(none)" if group is None else str(group)
        line = series.setdefault(name, [0.0] * len(index))
        line[i] += int(nusd) / NANO
        calls[name] = calls.get(name, 0) + int(n)
    return {
        "group_by": group_by,
        "bucket_s": width,
        "buckets": [b * width for b in index],
        "series": series,
        "calls": calls,
    }
