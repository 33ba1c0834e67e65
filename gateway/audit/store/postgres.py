"""The production audit store: PostgreSQL through asyncpg, shared by every replica.

The schema is created and migrated on start under an advisory lock (replicas starting
together migrate once). A batch is ONE statement (rows as one array per column, ``unnest``ed,
plus the head upsert in a CTE): one round trip and one commit per group, which is what keeps
thousands of events per second cheap for a single worker. Only huge groups use ``COPY``.

The group-commit writer has a connection of its own instead of borrowing one from the pool:
a pool release runs a reset query (``RESET ALL`` ...), a second round trip inside every
event's wait, and the writer is sequential anyway. A broken writer connection is dropped
and the next batch reconnects. Queries, heads and retention use the pool.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from gateway.audit.chain import Head
from gateway.audit.schema import ROW_COLUMNS
from gateway.audit.store import pg_guard, rollup, sql
from gateway.audit.store.base import Anchor, AuditStore, ChainInfo, Filters, event_of
from gateway.errors import AuditUnavailable

_D = sql.POSTGRES
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
_MIGRATE_LOCK = 5_747_420_081  # stable advisory-lock id: replicas starting together migrate once
_COPY_FROM = 1024  # COPY only pays off for very large groups (it needs its own transaction)
_VERIFY_PAGE = 10_000
#: Bounds a connection attempt: a server that drops packets must not hold the start for
#: asyncpg's default minute (``open`` is retried while it fails, see ``AuditService``).
_CONNECT_TIMEOUT_S = 10.0
#: Errors of ``open`` that mean "not reachable now" (down, starting, full), not a bad setting.
_DOWN = (
    OSError,
    TimeoutError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.ConnectionDoesNotExistError,
)

#: Ordered migrations; each entry runs once and bumps ``audit_meta.version``.
#: v3 makes the tables append-only (``pg_guard``: triggers; the roles' grants are separate);
#: v4 adds the content captures (outside the chain: neither chained nor append-only); v5 a
#: covering index for the console's time-window aggregates; v6 the hourly spend rollup
#: (``rollup.py``: the spend page and report read aggregates); v7 refolds it with daily rows;
#: v8 narrows the filter indexes to the rows their filters can find (``sql.narrow_ddl``).
_MIGRATIONS: tuple[tuple[str, ...], ...] = (
    tuple(sql.ddl(_D)),
    tuple(sql.registry_ddl()),
    tuple(pg_guard.append_only_ddl()),
    tuple(sql.capture_ddl(_D)),
    tuple(sql.console_pg_ddl()),
    tuple(rollup.ddl()),
    tuple(rollup.refold_ddl()),
    tuple(sql.narrow_ddl()),
)
SCHEMA_VERSION = len(_MIGRATIONS)


class MigrationRefused(RuntimeError):
    """The connecting role may not migrate the schema (the gateway's writer role, by design)."""


class PostgresStore(AuditStore):
    name = "postgres"
    dialect = _D
    append_awaits_io = True

    def __init__(
        self, dsn: str, schema: str = "wardgate", pool_size: int = 4, synchronous_commit: str = "on"
    ) -> None:
        if not _IDENT.match(schema):
            raise ValueError(f"audit.postgres_schema {schema!r} is not a plain SQL identifier")
        self.dsn = dsn
        self.schema = schema
        self.pool_size = pool_size
        self.synchronous_commit = synchronous_commit
        self._pool: asyncpg.Pool | None = None
        #: The hourly spend rollup (set when the pool opens).
        self.rollup: rollup.SpendRollup | None = None
        self._writer: asyncpg.Connection | None = None
        self._server_settings = {"search_path": schema, "synchronous_commit": synchronous_commit}
        self._upsert_head = sql.upsert_head_sql(_D)
        self._batch = sql.pg_batch_sql()
        self._single = sql.pg_single_sql()
        parts = urlsplit(dsn)
        self._where = f"postgresql {parts.hostname or '127.0.0.1'}:{parts.port or 5432}"

    @property
    def where(self) -> str:
        return self._where

    def unreachable(self, exc: BaseException) -> bool:
        return isinstance(exc, _DOWN)

    async def open(self) -> None:
        try:
            conn = await asyncpg.connect(self.dsn, timeout=_CONNECT_TIMEOUT_S)
            try:
                await self._migrate(conn)
            finally:
                await conn.close()
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=1,
                max_size=self.pool_size,
                server_settings=self._server_settings,
                timeout=_CONNECT_TIMEOUT_S,
            )
            self.rollup = rollup.SpendRollup(self._pool)
            await self._writer_conn()
        except BaseException:
            await self.close()  # a half-open store (pool, no writer) is retried from scratch
            raise

    async def _migrate(self, conn: asyncpg.Connection) -> None:
        """Bring the schema to ``SCHEMA_VERSION``; a current schema needs no DDL privilege at
        all, so the gateway's append-only writer role starts without owning anything."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATE_LOCK)
            version = 0
            if await conn.fetchval("SELECT to_regclass($1)", f'"{self.schema}".audit_meta') is not None:
                version = (
                    await conn.fetchval(
                        f"SELECT v FROM \"{self.schema}\".audit_meta WHERE k = 'schema_version'"
                    )
                    or 0
                )
            if version >= SCHEMA_VERSION:
                return
            role = await conn.fetchval("SELECT current_user")
            try:
                await self._migrate_from(conn, version)
            except asyncpg.InsufficientPrivilegeError as exc:
                raise MigrationRefused(
                    f"audit schema {self.schema!r} is at version {version}, this gateway needs "
                    f"{SCHEMA_VERSION}, and role {role!r} may not "
                    f"migrate it ({exc}). Run `wardgate audit grant --apply` (or start once) as the "
                    "schema's owner."
                ) from None

    async def _migrate_from(self, conn: asyncpg.Connection, version: int) -> None:
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        await conn.execute(f'SET LOCAL search_path TO "{self.schema}"')
        await conn.execute("CREATE TABLE IF NOT EXISTS audit_meta (k text PRIMARY KEY, v bigint NOT NULL)")
        for i, stmts in enumerate(_MIGRATIONS, start=1):
            if i > version:
                for stmt in stmts:
                    await conn.execute(stmt)
        await conn.execute(
            "INSERT INTO audit_meta (k, v) VALUES ('schema_version', $1) "
            "ON CONFLICT (k) DO UPDATE SET v = excluded.v",
            SCHEMA_VERSION,
        )

    async def apply_grants(self, writer: str, pruner: str) -> list[str]:
        """Migrate (as the owner), then grant the two roles theirs; returns what was run."""
        stmts = pg_guard.grant_sql(self.schema, writer, pruner)
        conn = await asyncpg.connect(self.dsn)
        try:
            await self._migrate(conn)
            async with conn.transaction():
                for stmt in stmts:
                    await conn.execute(stmt)
        finally:
            await conn.close()
        return stmts

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.close()
            self._writer = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
            self.rollup = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise AuditUnavailable(f"The audit store ({self._where}) is not reachable yet.")
        return self._pool

    async def ping(self) -> None:
        await self.pool.fetchval("SELECT 1")

    # --- writes ------------------------------------------------------------------------
    async def _writer_conn(self) -> asyncpg.Connection:
        if self._writer is None or self._writer.is_closed():
            self._writer = await asyncpg.connect(
                self.dsn, server_settings=self._server_settings, timeout=_CONNECT_TIMEOUT_S
            )
        return self._writer

    async def append(self, shard: str, rows: list[tuple[Any, ...]], head: Head) -> None:
        conn = await self._writer_conn()
        try:
            if len(rows) == 1:
                await conn.execute(self._single, *rows[0], shard, head.seq, head.hash, time.time())
            elif len(rows) < _COPY_FROM:
                columns = [list(c) for c in zip(*rows, strict=True)]
                await conn.execute(self._batch, *columns, shard, head.seq, head.hash, time.time())
            else:
                async with conn.transaction():
                    await conn.copy_records_to_table(
                        "audit_events", records=rows, columns=ROW_COLUMNS, schema_name=self.schema
                    )
                    await conn.execute(self._upsert_head, shard, head.seq, head.hash, time.time())
        except BaseException:
            # Its state is unknown (a half-read reply, a dead socket): the next batch reconnects.
            self._writer = None
            conn.terminate()
            raise

    # --- chain bookkeeping -------------------------------------------------------------
    async def head(self, shard: str) -> Head | None:
        row = await self.pool.fetchrow("SELECT seq, hash FROM audit_heads WHERE shard = $1", shard)
        return Head(row[0], row[1]) if row else None

    async def heads(self, since_ts: float = 0.0) -> dict[str, Head]:
        rows = await self.pool.fetch("SELECT shard, seq, hash FROM audit_heads WHERE ts >= $1", since_ts)
        return {r[0]: Head(r[1], r[2]) for r in rows}

    async def chains(self) -> list[ChainInfo]:
        return [ChainInfo(r[0], Head(r[1], r[2]), r[3], r[4]) for r in await self.pool.fetch(sql.CHAINS_SQL)]

    async def abandoned_marks(self) -> list[str]:
        return [r[0] for r in await self.pool.fetch(sql.ABANDONED_SQL)]

    async def renew(self, shard: str) -> None:
        await self.pool.execute("UPDATE audit_heads SET ts = $1 WHERE shard = $2", time.time(), shard)

    async def shards(self) -> list[str]:
        rows = await self.pool.fetch(
            "SELECT shard FROM audit_heads UNION SELECT shard FROM audit_anchors "
            "UNION SELECT DISTINCT shard FROM audit_events ORDER BY 1"
        )
        return [r[0] for r in rows]

    async def anchors(self) -> dict[str, Anchor]:
        rows = await self.pool.fetch("SELECT shard, seq, prev_hash FROM audit_anchors")
        return {r[0]: Anchor(r[1], r[2]) for r in rows}

    async def hash_at(self, shard: str, seq: int) -> str | None:
        return await self.pool.fetchval(
            "SELECT hash FROM audit_events WHERE shard = $1 AND seq = $2", shard, seq
        )

    async def iter_pages(self, shard: str) -> AsyncIterator[list[tuple[Any, ...]]]:
        cols = ", ".join(ROW_COLUMNS)
        last = -1
        while True:
            rows = await self.pool.fetch(
                f"SELECT {cols} FROM audit_events WHERE shard = $1 AND seq > $2 ORDER BY seq LIMIT $3",
                shard,
                last,
                _VERIFY_PAGE,
            )
            if rows:
                yield [tuple(r) for r in rows]
            if len(rows) < _VERIFY_PAGE:
                return
            last = rows[-1][2]

    # --- queries -----------------------------------------------------------------------
    async def query_raw(
        self, filters: Filters, *, after: tuple[float, str] | None = None, limit: int = 100, desc: bool = True
    ) -> list[tuple[float, str, str, str]]:
        query, params = sql.page_sql(_D, filters, after, limit, desc)
        return [tuple(r) for r in await self.pool.fetch(query, *params)]

    async def snapshot(
        self, filters: Filters, chain: str | None = None, since_seq: int | None = None, page: int = 1000
    ) -> AsyncIterator[list[tuple[str, int, str, str, str]]]:
        """One REPEATABLE READ, READ ONLY transaction and a server-side cursor, on a connection
        of its own (a slow export client must not hold one of the pool's)."""
        query, params = sql.snapshot_sql(_D, filters, chain, since_seq)
        conn = await asyncpg.connect(self.dsn, server_settings=self._server_settings)
        try:
            async with conn.transaction(isolation="repeatable_read", readonly=True):
                cursor = await conn.cursor(query, *params)
                while True:
                    rows = await cursor.fetch(page)
                    if rows:
                        yield [tuple(r) for r in rows]
                    if len(rows) < page:
                        return
        finally:
            await conn.close()

    async def get(self, event_id: str) -> dict[str, Any] | None:
        row = await self.pool.fetchrow("SELECT hash, body FROM audit_events WHERE id = $1", event_id)
        return event_of(row[1], row[0]) if row else None

    async def spend(self, group_by: str, filters: Filters) -> list[dict[str, Any]]:
        """Per group; an unfiltered window grouped by a rollup dimension reads the rollup's
        whole hours and the events of its partial ones (same numbers, not every body)."""
        if self.rollup is None or group_by not in rollup.DIMS or not rollup.eligible(filters):
            return await self._spend_rows(group_by, filters)
        folded = await self.rollup.rows(group_by, filters.since, filters.until)
        if folded is None:  # being folded by another reader
            return await self._spend_rows(group_by, filters)
        merged: dict[Any, list[int]] = {}
        for r in folded:
            rollup.add_row(merged, r[1], r[2:])
        for since, until in rollup.edges(filters.since, filters.until):
            for row in await self._spend_rows(group_by, Filters(since=since, until=until)):
                rollup.add_row(merged, row["group"], [row[k] for k in rollup.SPEND_COLUMNS])
        # The rollup folds model calls only: the priced MCP tool calls of its whole hours are
        # read from their events (few; the edges above already hold theirs).
        first, end = rollup.hours(filters.since, filters.until)
        if first is None or end is None or first < end:
            tools = Filters(
                since=None if first is None else float(first * rollup.HOUR),
                until=None if end is None else float(end * rollup.HOUR),
                kind="mcp",
            )
            for row in await self._spend_rows(group_by, tools):
                rollup.add_row(merged, row["group"], [row[k] for k in rollup.SPEND_COLUMNS])
        rows = [{"group": g, **dict(zip(rollup.SPEND_COLUMNS, v, strict=True))} for g, v in merged.items()]
        return sorted(rows, key=lambda r: (-r["cost_nusd"], r["group"] is None, str(r["group"])))

    async def _spend_rows(self, group_by: str, filters: Filters) -> list[dict[str, Any]]:
        query, params = sql.spend_sql(_D, group_by, filters)
        return [
            {"group": r[0], **dict(zip(rollup.SPEND_COLUMNS, (int(v) for v in r[1:]), strict=True))}
            for r in await self.pool.fetch(query, *params)
        ]

    async def select(self, query: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self.pool.fetch(query, *params)]

    # --- content captures --------------------------------------------------------------
    async def put_capture(self, event_id: str, ts: float, run_id: str | None, digest: str, body: str) -> None:
        await self.pool.execute(sql.put_capture_sql(_D), event_id, ts, run_id, digest, body)

    async def captures(self, event_ids: list[str]) -> dict[str, tuple[str, str]]:
        if not event_ids:
            return {}
        rows = await self.pool.fetch(
            "SELECT event_id, hash, body FROM audit_captures WHERE event_id = ANY($1::text[])", event_ids
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    async def prune_captures(self, cutoff_ts: float) -> int:
        status = await self.pool.execute("DELETE FROM audit_captures WHERE ts < $1", cutoff_ts)
        return int(status.split()[-1])

    # --- retention ---------------------------------------------------------------------
    async def plan_prune(self, cutoff_ts: float) -> dict[str, Anchor]:
        plan: dict[str, Anchor] = {}
        for shard, young, first, last in await self.pool.fetch(sql.prune_plan_sql(_D), cutoff_ts):
            if young is not None and young > first:
                prev = await self.pool.fetchval(
                    "SELECT prev_hash FROM audit_events WHERE shard = $1 AND seq = $2", shard, young
                )
                plan[shard] = Anchor(young, prev)
            elif young is None:
                last_hash = await self.pool.fetchval(
                    "SELECT hash FROM audit_events WHERE shard = $1 AND seq = $2", shard, last
                )
                plan[shard] = Anchor(last + 1, last_hash)
        return plan

    async def apply_prune(self, anchors: dict[str, Anchor]) -> int:
        deleted = 0
        now = time.time()
        async with self.pool.acquire() as conn, conn.transaction():
            for shard, anchor in anchors.items():
                # The anchor first: the append-only trigger lets only rows below it go.
                await conn.execute(sql.upsert_anchor_sql(_D), shard, anchor.seq, anchor.prev_hash, now)
                status = await conn.execute(
                    "DELETE FROM audit_events WHERE shard = $1 AND seq < $2", shard, anchor.seq
                )
                deleted += int(status.split()[-1])
            oldest = await conn.fetchval("SELECT min(ts) FROM audit_events")
            if oldest is not None and self.rollup is not None:
                await self.rollup.prune(conn, oldest)
        return deleted
