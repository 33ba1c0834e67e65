"""SQL shared by the SQLite and PostgreSQL stores: the DDL, filters and keyset paging.

The two dialects differ only in type names and placeholders (``?`` vs ``$n::type``), so the
statements are written once here and rendered per dialect.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.audit.schema import ROW_COLUMNS
from gateway.audit.store.base import SPEND_GROUPS, Filters


@dataclass(slots=True, frozen=True)
class Dialect:
    name: str
    text: str
    bigint: str
    double: str
    integer: str

    def ph(self, i: int, typ: str) -> str:
        if self.name == "sqlite":
            return "?"
        return f"${i}::{getattr(self, typ)}"


SQLITE = Dialect("sqlite", "TEXT", "INTEGER", "REAL", "INTEGER")
POSTGRES = Dialect("postgres", "text", "bigint", "double precision", "integer")

#: Indexed columns: time, then the filters an auditor starts from (team, key, agent, run,
#: decision). Each index costs ~12 µs per event on SQLite, so model (usually combined with a
#: time window or one of these) is filtered without one. Schema v1 indexed every row; since
#: ``narrow_ddl`` they are partial (see there).
_INDEXED = ("team", "key_id", "agent_id", "run_id", "decision")
#: Partial index conditions (``narrow_ddl``). A filter ``c = value`` implies ``c IS NOT NULL``,
#: so both engines use those with a bound value; the decision index holds only what is not
#: ``allow`` (denials, holds, errors: the few rows an auditor looks for), and ``where`` adds
#: the index's own term to a decision filter other than ``allow`` so the planner may use it
#: (a filter on ``allow``, most of the rows, reads the time index).
_NARROW = {
    "request": ("request_id", "request_id IS NOT NULL"),
    "team": ("team, ts, id", "team IS NOT NULL"),
    "key_id": ("key_id, ts, id", "key_id IS NOT NULL"),
    "agent_id": ("agent_id, ts, id", "agent_id IS NOT NULL"),
    "run_id": ("run_id, ts, id", "run_id IS NOT NULL"),
    "decision": ("decision, ts, id", "decision <> 'allow'"),
}
DECISION_INDEXED = "decision <> 'allow'"


def ddl(d: Dialect) -> list[str]:
    t, b, f, i = d.text, d.bigint, d.double, d.integer
    stmts = [
        f"""CREATE TABLE IF NOT EXISTS audit_events (
            id {t} PRIMARY KEY, shard {t} NOT NULL, seq {b} NOT NULL, ts {f} NOT NULL,
            kind {t} NOT NULL, request_id {t}, team {t}, key_id {t}, agent_id {t}, run_id {t},
            model {t}, model_used {t}, decision {t}, status {i}, input_tokens {b}, output_tokens {b},
            cost_nusd {b}, prev_hash {t} NOT NULL, hash {t} NOT NULL, body {t} NOT NULL,
            UNIQUE (shard, seq))""",
        f"CREATE TABLE IF NOT EXISTS audit_heads (shard {t} PRIMARY KEY, seq {b} NOT NULL, hash {t} NOT NULL, ts {f} NOT NULL)",
        f"""CREATE TABLE IF NOT EXISTS audit_anchors (
            shard {t} PRIMARY KEY, seq {b} NOT NULL, prev_hash {t} NOT NULL, ts {f} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS audit_events_ts ON audit_events (ts, id)",
        "CREATE INDEX IF NOT EXISTS audit_events_request ON audit_events (request_id)",
    ]
    stmts += [f"CREATE INDEX IF NOT EXISTS audit_events_{c} ON audit_events ({c}, ts, id)" for c in _INDEXED]
    return stmts


def narrow_ddl() -> list[str]:
    """Schema v4 (SQLite) / v8 (PostgreSQL): the per-filter indexes hold only the rows a filter
    can find through them. Every index an event is written to is a page of WAL (SQLite) per
    commit; a call without an agent skipped none, and an allowed call (nearly all of them)
    was written to the decision index that no query reads for ``allow``. Rebuilt on open,
    once (``DROP`` then ``CREATE``: idempotent, and the same on a new or an old database)."""
    stmts: list[str] = []
    for name, (cols, cond) in _NARROW.items():
        stmts += [
            f"DROP INDEX IF EXISTS audit_events_{name}",
            f"CREATE INDEX audit_events_{name} ON audit_events ({cols}) WHERE {cond}",
        ]
    return stmts


def registry_ddl() -> list[str]:
    """Schema v2, the chain registry: find the (rare) abandonment marks without a table scan.

    A partial index holds only ``chain_abandoned`` rows, so it costs nothing per call event.
    """
    return [
        "CREATE INDEX IF NOT EXISTS audit_events_abandoned ON audit_events (shard) "
        "WHERE kind = 'chain_abandoned'"
    ]


def capture_ddl(d: Dialect) -> list[str]:
    """Schema v3: content captures, outside the chain (pruned on their own retention)."""
    t, f = d.text, d.double
    return [
        f"""CREATE TABLE IF NOT EXISTS audit_captures (
            event_id {t} PRIMARY KEY, ts {f} NOT NULL, run_id {t}, hash {t} NOT NULL, body {t} NOT NULL)""",
        "CREATE INDEX IF NOT EXISTS audit_captures_ts ON audit_captures (ts)",
    ]


def console_pg_ddl() -> list[str]:
    """PostgreSQL migration v5: one covering index for the console's time-window aggregates
    (spend series, top spenders, run search), so they read the index alone (an index-only
    scan) instead of every event's heap row and its ~2 KB body."""
    return [
        "CREATE INDEX IF NOT EXISTS audit_events_window ON audit_events (ts) INCLUDE "
        "(kind, team, key_id, agent_id, run_id, model, decision, cost_nusd, input_tokens, output_tokens)"
    ]


def put_capture_sql(d: Dialect) -> str:
    marks = ", ".join(
        d.ph(i, typ) for i, typ in ((1, "text"), (2, "double"), (3, "text"), (4, "text"), (5, "text"))
    )
    return (
        f"INSERT INTO audit_captures (event_id, ts, run_id, hash, body) VALUES ({marks}) "
        "ON CONFLICT (event_id) DO NOTHING"
    )


#: Every chain with its head, when the head last moved (or was renewed), and its last event's
#: kind (``chain_close`` = closed cleanly; NULL = the head's event is missing).
CHAINS_SQL = (
    "SELECT h.shard, h.seq, h.hash, h.ts, e.kind FROM audit_heads h "
    "LEFT JOIN audit_events e ON e.shard = h.shard AND e.seq = h.seq"
)
ABANDONED_SQL = "SELECT body FROM audit_events WHERE kind = 'chain_abandoned'"


def insert_sql(d: Dialect) -> str:
    cols = ", ".join(ROW_COLUMNS)
    if d.name == "sqlite":
        marks = ", ".join("?" for _ in ROW_COLUMNS)
    else:
        marks = ", ".join(f"${i + 1}" for i in range(len(ROW_COLUMNS)))
    return f"INSERT INTO audit_events ({cols}) VALUES ({marks})"


#: Column types for PostgreSQL's one-statement batch insert (``unnest`` of one array per column).
_PG_ARRAY_TYPES = (
    "text",
    "text",
    "int8",
    "float8",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "text",
    "int4",
    "int8",
    "int8",
    "int8",
    "text",
    "text",
    "text",
)


def _pg_with_head(insert: str) -> str:
    """``insert`` (of ``len(ROW_COLUMNS)`` parameters) in a CTE, then the head upsert after it."""
    n = len(ROW_COLUMNS)
    return (
        f"WITH ins AS ({insert}) "
        f"INSERT INTO audit_heads (shard, seq, hash, ts) VALUES (${n + 1}, ${n + 2}, ${n + 3}, ${n + 4}) "
        "ON CONFLICT (shard) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, ts = excluded.ts"
    )


def pg_batch_sql() -> str:
    """Insert a whole batch and move the head in ONE statement: one round trip, one commit.

    A single statement is atomic on its own, so no BEGIN/COMMIT round trips are needed; the
    rows arrive as one array per column and ``unnest`` turns them back into rows.
    """
    arrays = ", ".join(f"${i + 1}::{t}[]" for i, t in enumerate(_PG_ARRAY_TYPES))
    return _pg_with_head(
        f"INSERT INTO audit_events ({', '.join(ROW_COLUMNS)}) SELECT * FROM unnest({arrays})"
    )


def pg_single_sql() -> str:
    """``pg_batch_sql`` for a batch of one (every commit at low load) with plain parameters.

    Encoding twenty one-element arrays costs asyncpg ~35 µs more CPU than twenty scalars.
    """
    return _pg_with_head(insert_sql(POSTGRES))


def upsert_head_sql(d: Dialect) -> str:
    p = [d.ph(i, typ) for i, typ in ((1, "text"), (2, "bigint"), (3, "text"), (4, "double"))]
    return (
        f"INSERT INTO audit_heads (shard, seq, hash, ts) VALUES ({', '.join(p)}) "
        "ON CONFLICT (shard) DO UPDATE SET seq = excluded.seq, hash = excluded.hash, ts = excluded.ts"
    )


def upsert_anchor_sql(d: Dialect) -> str:
    p = [d.ph(i, typ) for i, typ in ((1, "text"), (2, "bigint"), (3, "text"), (4, "double"))]
    return (
        f"INSERT INTO audit_anchors (shard, seq, prev_hash, ts) VALUES ({', '.join(p)}) "
        "ON CONFLICT (shard) DO UPDATE SET seq = excluded.seq, prev_hash = excluded.prev_hash, ts = excluded.ts "
        "WHERE audit_anchors.seq < excluded.seq"
    )


@dataclass(slots=True)
class Where:
    d: Dialect
    conds: list[str] = field(default_factory=list)
    params: list[Any] = field(default_factory=list)

    def add(self, template: str, *values: tuple[Any, str]) -> None:
        marks = []
        for value, typ in values:
            self.params.append(value)
            marks.append(self.d.ph(len(self.params), typ))
        self.conds.append(template.format(*marks))

    def sql(self) -> str:
        return (" WHERE " + " AND ".join(self.conds)) if self.conds else ""


_EQ = {
    "team": "team",
    "key_id": "key_id",
    "agent_id": "agent_id",
    "run_id": "run_id",
    "decision": "decision",
    "kind": "kind",
    "request_id": "request_id",
}


def where(d: Dialect, filters: Filters, after: tuple[float, str] | None = None, desc: bool = True) -> Where:
    w = Where(d)
    if filters.since is not None:
        w.add("ts >= {}", (filters.since, "double"))
    if filters.until is not None:
        w.add("ts < {}", (filters.until, "double"))
    for attr, col in _EQ.items():
        value = getattr(filters, attr)
        if value is not None:
            w.add(f"{col} = {{}}", (value, "text"))
    if filters.decision is not None and filters.decision != "allow":
        w.add(DECISION_INDEXED)  # implied by the filter: lets the partial index serve it
    if filters.model is not None:
        w.add("(model = {} OR model_used = {})", (filters.model, "text"), (filters.model, "text"))
    if after is not None:
        op = "<" if desc else ">"
        w.add(f"(ts, id) {op} ({{}}, {{}})", (after[0], "double"), (after[1], "text"))
    return w


def page_sql(
    d: Dialect, filters: Filters, after: tuple[float, str] | None, limit: int, desc: bool
) -> tuple[str, list[Any]]:
    w = where(d, filters, after, desc)
    order = "DESC" if desc else "ASC"
    w.params.append(int(limit))
    mark = d.ph(len(w.params), "bigint")
    sql = f"SELECT ts, id, hash, body FROM audit_events{w.sql()} ORDER BY ts {order}, id {order} LIMIT {mark}"
    return sql, w.params


def snapshot_sql(
    d: Dialect, filters: Filters, chain: str | None, since_seq: int | None
) -> tuple[str, list[Any]]:
    """An export's one query, in commit order (chain, seq): what ``verify`` walks.

    Ordering by the call's start time (``ts``) put a stream that committed late behind
    events committed after it, so keyset pages by ``ts`` could skip it."""
    w = where(d, filters)
    if chain is not None:
        w.add("shard = {}", (chain, "text"))
    if since_seq is not None:
        w.add("seq >= {}", (since_seq, "bigint"))
    sql = f"SELECT shard, seq, prev_hash, hash, body FROM audit_events{w.sql()} ORDER BY shard, seq"
    return sql, w.params


def _cache_field(d: Dialect, name: str) -> str:
    """The event body's ``cache.<name>`` (text), read only from events that have a cache
    section (the substring test skips parsing every other body; in canonical JSON the key is
    written exactly so, and an escaped quote inside a string cannot match it)."""
    if d.name == "sqlite":
        return f"""(CASE WHEN instr(body, '"cache":{{') > 0 THEN json_extract(body, '$.cache.{name}') END)"""
    return f"""(CASE WHEN strpos(body, '"cache":{{') > 0 THEN (body::jsonb -> 'cache' ->> '{name}') END)"""


def spend_sql(d: Dialect, group_by: str, filters: Filters) -> tuple[str, list[Any]]:
    """Per group: model calls, tokens, settled cost (model calls and priced MCP tool calls),
    then the cache's hits, lookups (hits and misses) and what the hits saved (nano-USD), then
    the priced MCP tool calls and their cost."""
    col = SPEND_GROUPS[group_by]
    w = where(d, Filters(**filters.active()))
    w.add("(kind = 'call' OR (kind = 'mcp' AND cost_nusd IS NOT NULL))")
    status = _cache_field(d, "status")
    saved = _cache_field(d, "saved_nusd")
    saved_num = f"CAST({saved} AS {d.bigint})"
    sql = (
        f"SELECT {col}, coalesce(sum(CASE WHEN kind = 'call' THEN 1 ELSE 0 END), 0), "
        "coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0), "
        f"coalesce(sum(cost_nusd), 0), "
        f"coalesce(sum(CASE WHEN {status} = 'hit' THEN 1 ELSE 0 END), 0), "
        f"coalesce(sum(CASE WHEN {status} IN ('hit', 'miss') THEN 1 ELSE 0 END), 0), "
        f"coalesce(sum({saved_num}), 0), "
        "coalesce(sum(CASE WHEN kind = 'mcp' THEN 1 ELSE 0 END), 0), "
        "coalesce(sum(CASE WHEN kind = 'mcp' THEN cost_nusd ELSE 0 END), 0) "
        f"FROM audit_events{w.sql()} GROUP BY {col} ORDER BY 5 DESC, 1"
    )
    return sql, w.params


def prune_plan_sql(d: Dialect) -> str:
    since = d.ph(1, "double")
    return (
        f"SELECT shard, min(CASE WHEN ts >= {since} THEN seq END), min(seq), max(seq) "
        "FROM audit_events GROUP BY shard"
    )
