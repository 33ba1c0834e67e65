"""The audit tables' indexes: every query that filters reads through one, on both stores, and
the partial (narrowed) filter indexes replace the full ones of a database made before them.

Indexes on ``audit_events`` and what reads them:
  primary key ``id``                 ``get`` (one event, the API's and console's event page)
  unique ``(shard, seq)``            verify / export pages, ``hash_at``, prune plan, lease
  ``audit_events_ts (ts, id)``       time windows, keyset pages, filters on ``allow``/model/kind
  ``audit_events_request``           the ``request_id`` filter (``wardgate audit why``)
  ``audit_events_{team,key_id,agent_id,run_id}``  their filters, run timeline, console runs
  ``audit_events_decision``          decision filters other than ``allow``
  ``audit_events_abandoned``         the chain registry's abandonment marks
  ``audit_events_window`` (PG only)  the console's index-only time-window aggregates
The filter indexes are partial (``sql.narrow_ddl``): an event is written only to those its
columns can be found through, so a call without an agent, or an allowed one, costs fewer
index pages per commit.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from audit_helpers import PG_DSN

from gateway.audit.store import sql
from gateway.audit.store.base import Filters
from gateway.audit.store.postgres import PostgresStore
from gateway.audit.store.sqlite import SQLiteStore

#: A filter and the index its page query must search.
CASES: list[tuple[Filters, str]] = [
    (Filters(team="t"), "audit_events_team"),
    (Filters(key_id="k"), "audit_events_key_id"),
    (Filters(agent_id="a"), "audit_events_agent_id"),
    (Filters(run_id="r"), "audit_events_run_id"),
    (Filters(request_id="q"), "audit_events_request"),
    (Filters(decision="deny"), "audit_events_decision"),
    (Filters(decision="pending", since=1.0), "audit_events_decision"),
    (Filters(decision="allow", since=1.0), "audit_events_ts"),
    (Filters(since=1.0, until=2.0), "audit_events_ts"),
    (Filters(run_id="r", since=1.0), "audit_events_run_id"),
]

ROW = (
    "ev_1",
    "s1",
    1,
    1.5,
    "call",
    "q",
    "t",
    "k",
    None,
    None,
    "m",
    "m",
    "allow",
    200,
    1,
    2,
    3,
    "0" * 64,
    "1" * 64,
    '{"id":"ev_1"}',
)


def _sqlite_plan(db: sqlite3.Connection, query: str, params: list[Any]) -> str:
    return " | ".join(r[3] for r in db.execute(f"EXPLAIN QUERY PLAN {query}", params).fetchall())


def _old_schema(path: Path) -> None:
    """A database as schema v3 made it: every filter index over every row."""
    db = sqlite3.connect(path, isolation_level=None)
    for stmt in sql.ddl(sql.SQLITE) + sql.registry_ddl() + sql.capture_ddl(sql.SQLITE):
        db.execute(stmt)
    db.execute(sql.insert_sql(sql.SQLITE), ROW)
    db.execute("PRAGMA user_version=3")
    db.close()


def _index_sql(path: Path) -> dict[str, str]:
    db = sqlite3.connect(path)
    try:
        rows = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        return {name: text for name, text in rows}
    finally:
        db.close()


async def test_an_old_sqlite_database_is_narrowed_at_open_once(tmp_path: Path) -> None:
    path = tmp_path / "audit.db"
    _old_schema(path)
    assert "WHERE" not in _index_sql(path)["audit_events_team"]
    for _ in range(2):  # the second open finds it current and changes nothing
        store = SQLiteStore(path)
        await store.open()
        try:
            assert [e["id"] for e in await store.query(Filters(team="t"))] == ["ev_1"]
            assert await store.query(Filters(agent_id="a")) == []
        finally:
            await store.close()
        indexes = _index_sql(path)
        assert "WHERE team IS NOT NULL" in indexes["audit_events_team"]
        assert "WHERE decision <> 'allow'" in indexes["audit_events_decision"]
        assert "WHERE request_id IS NOT NULL" in indexes["audit_events_request"]
        db = sqlite3.connect(path)
        assert db.execute("PRAGMA user_version").fetchone()[0] == 4
        # The allowed call without an agent is in none of the indexes it cannot be found by.
        assert db.execute("SELECT count(*) FROM audit_events INDEXED BY audit_events_team").fetchone()
        for name in ("audit_events_agent_id", "audit_events_run_id", "audit_events_decision"):
            stat = db.execute(f"SELECT count(*) FROM audit_events INDEXED BY {name} WHERE {_cond(name)}")
            assert stat.fetchone()[0] == 0, name
        db.close()


def _cond(index: str) -> str:
    return {
        "audit_events_agent_id": "agent_id IS NOT NULL",
        "audit_events_run_id": "run_id IS NOT NULL",
        "audit_events_decision": sql.DECISION_INDEXED,
    }[index]


@pytest.mark.parametrize(("filters", "index"), CASES)
async def test_each_sqlite_filter_searches_its_index(tmp_path: Path, filters: Filters, index: str) -> None:
    store = SQLiteStore(tmp_path / "audit.db")
    await store.open()
    await store.close()
    db = sqlite3.connect(tmp_path / "audit.db")
    try:
        for desc in (True, False):
            query, params = sql.page_sql(sql.SQLITE, filters, (1.7, "ev_x"), 10, desc)
            plan = _sqlite_plan(db, query, params)
            assert f"USING INDEX {index}" in plan or f"USING COVERING INDEX {index}" in plan, plan
            assert "SCAN audit_events" not in plan.replace(f"USING INDEX {index}", ""), plan
        lookups = {
            "SELECT hash, body FROM audit_events WHERE id = ?": "sqlite_autoindex_audit_events_1",
            "SELECT hash FROM audit_events WHERE shard = ? AND seq = ?": "sqlite_autoindex_audit_events_2",
            sql.ABANDONED_SQL: "audit_events_abandoned",
        }
        for query, name in lookups.items():
            plan = _sqlite_plan(db, query, ["x", 1][: query.count("?")])
            assert name in plan, (query, plan)
    finally:
        db.close()


async def test_each_postgres_filter_can_use_its_index(pg_schema: str) -> None:
    store = PostgresStore(PG_DSN, schema=pg_schema)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": pg_schema})
    try:
        # Empty tables: forbid sequential scans so the plan shows whether an index serves it.
        await conn.execute("SET enable_seqscan = off")
        for filters, index in CASES:
            query, params = sql.page_sql(sql.POSTGRES, filters, (1.7, "ev_x"), 10, True)
            await conn.execute(f"PREPARE q AS {query}")
            await conn.execute("SET plan_cache_mode = force_generic_plan")
            args = ", ".join(_pg_literal(p) for p in params)
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN EXECUTE q({args})"))
            await conn.execute("DEALLOCATE q")
            wanted = "audit_events_window" if index == "audit_events_ts" else index
            assert index in plan or wanted in plan, (filters, plan)
        names = {
            r[0]: r[1]
            for r in await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1", pg_schema
            )
        }
        assert "WHERE (decision <> 'allow'::text)" in names["audit_events_decision"]
        assert "WHERE (agent_id IS NOT NULL)" in names["audit_events_agent_id"]
    finally:
        await conn.close()


def _pg_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


async def test_an_old_postgres_schema_is_narrowed_at_open(pg_schema: str) -> None:
    store = PostgresStore(PG_DSN, schema=pg_schema)
    await store.open()
    await store.close()
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": pg_schema})
    try:  # back to what v7 had: full indexes, version 7
        for name in ("team", "decision", "agent_id"):
            await conn.execute(f"DROP INDEX audit_events_{name}")
            await conn.execute(f"CREATE INDEX audit_events_{name} ON audit_events ({name}, ts, id)")
        await conn.execute("UPDATE audit_meta SET v = 7 WHERE k = 'schema_version'")
    finally:
        await conn.close()
    for _ in range(2):
        store = PostgresStore(PG_DSN, schema=pg_schema)
        await store.open()
        await store.close()
    conn = await asyncpg.connect(PG_DSN, server_settings={"search_path": pg_schema})
    try:
        defs = {
            r[0]: r[1]
            for r in await conn.fetch(
                "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1", pg_schema
            )
        }
        assert "WHERE (team IS NOT NULL)" in defs["audit_events_team"]
        assert "WHERE (decision <> 'allow'::text)" in defs["audit_events_decision"]
        assert await conn.fetchval("SELECT v FROM audit_meta WHERE k = 'schema_version'") == 8
    finally:
        await conn.close()
