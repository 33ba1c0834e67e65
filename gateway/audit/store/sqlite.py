"""The embedded audit store: one SQLite file in WAL mode.

Each connection lives on its own single thread (writer, readers, checkpointer), and a whole
batch runs as one function on the writer's thread: one thread hop and one commit per group,
instead of a hop per statement. WAL lets queries and exports read while the writer commits,
and the WAL is checkpointed in the background, never inside an event's commit.
``synchronous=NORMAL`` survives a process crash; ``FULL`` also survives power loss.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gateway.audit.chain import Head
from gateway.audit.schema import ROW_COLUMNS
from gateway.audit.store import sql
from gateway.audit.store.base import Anchor, AuditStore, Filters, StoredRow, event_of

T = TypeVar("T")
_D = sql.SQLITE
_SCHEMA_VERSION = 1
_VERIFY_PAGE = 5000
#: WAL checkpoint roughly every this many rows written (~1.5 KB of WAL per row with indexes).
_CHECKPOINT_AFTER = 2000
log = logging.getLogger("wardgate.audit")


class _Conn:
    """A sqlite3 connection pinned to one worker thread."""

    def __init__(self, path: Path, synchronous: str, name: str, autocheckpoint: bool = True) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"audit-sqlite-{name}")
        self._path = path
        self._synchronous = synchronous
        self._autocheckpoint = autocheckpoint
        self.db: sqlite3.Connection | None = None

    def _connect(self) -> None:
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=10.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute("PRAGMA busy_timeout=10000")
        if not self._autocheckpoint:
            db.execute("PRAGMA wal_autocheckpoint=0")
        self.db = db

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    async def open(self) -> None:
        await self.run(self._connect)

    async def close(self) -> None:
        if self.db is not None:
            await self.run(self.db.close)
            self.db = None
        self._pool.shutdown(wait=True)


class SQLiteStore(AuditStore):
    name = "sqlite"

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        # The writer never checkpoints (that would put the WAL copy-back and its fsync inside
        # some unlucky event's commit); a third connection does it in the background.
        self._w = _Conn(self.path, synchronous, "w", autocheckpoint=False)
        self._r = _Conn(self.path, synchronous, "r")
        self._c = _Conn(self.path, synchronous, "ckpt")
        self._since_checkpoint = 0
        self._checkpointing: asyncio.Task[Any] | None = None
        self._insert = sql.insert_sql(_D)
        self._upsert_head = sql.upsert_head_sql(_D)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._w.open()
        await self._w.run(self._migrate)
        await self._r.open()
        await self._c.open()

    def _migrate(self) -> None:
        db = self._w.db
        if db is None:
            raise RuntimeError("sqlite audit store is not open")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version < _SCHEMA_VERSION:
            db.execute("BEGIN IMMEDIATE")
            try:
                for stmt in sql.ddl(_D):
                    db.execute(stmt)
                db.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        if self._checkpointing is not None:
            await asyncio.gather(self._checkpointing, return_exceptions=True)
        await self._w.close()
        await self._r.close()
        await self._c.close()

    def _reader(self) -> sqlite3.Connection:
        if self._r.db is None:
            raise RuntimeError("sqlite audit store is not open")
        return self._r.db

    async def ping(self) -> None:
        await self._r.run(lambda: self._reader().execute("SELECT 1").fetchone())

    # --- writes ------------------------------------------------------------------------
    def _append(self, shard: str, rows: list[tuple[Any, ...]], head: Head, ts: float) -> None:
        db = self._w.db
        if db is None:
            raise RuntimeError("sqlite audit store is not open")
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(self._insert, rows)
            db.execute(self._upsert_head, (shard, head.seq, head.hash, ts))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    async def append(self, shard: str, rows: list[tuple[Any, ...]], head: Head) -> None:
        await self._w.run(self._append, shard, rows, head, time.time())
        self._since_checkpoint += len(rows) + 8  # a commit costs pages beyond its rows (indexes, head)
        if self._since_checkpoint >= _CHECKPOINT_AFTER and (self._checkpointing is None or self._checkpointing.done()):
            self._since_checkpoint = 0
            self._checkpointing = asyncio.create_task(self._c.run(self._checkpoint))

    def _checkpoint(self) -> None:
        """Copy the WAL back without blocking the writer (PASSIVE); failures just retry later."""
        db = self._c.db
        if db is not None:
            try:
                db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            except sqlite3.Error as exc:
                log.warning("audit sqlite checkpoint failed: %s", exc)

    # --- chain bookkeeping -------------------------------------------------------------
    async def _fetch(self, query: str, params: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        return await self._r.run(lambda: self._reader().execute(query, params).fetchall())

    async def head(self, shard: str) -> Head | None:
        rows = await self._fetch("SELECT seq, hash FROM audit_heads WHERE shard = ?", (shard,))
        return Head(rows[0][0], rows[0][1]) if rows else None

    async def heads(self, since_ts: float = 0.0) -> dict[str, Head]:
        rows = await self._fetch("SELECT shard, seq, hash FROM audit_heads WHERE ts >= ?", (since_ts,))
        return {r[0]: Head(r[1], r[2]) for r in rows}

    async def shards(self) -> list[str]:
        rows = await self._fetch(
            "SELECT DISTINCT shard FROM audit_events UNION SELECT shard FROM audit_heads "
            "UNION SELECT shard FROM audit_anchors ORDER BY 1"
        )
        return [r[0] for r in rows]

    async def anchors(self) -> dict[str, Anchor]:
        rows = await self._fetch("SELECT shard, seq, prev_hash FROM audit_anchors")
        return {r[0]: Anchor(r[1], r[2]) for r in rows}

    async def hash_at(self, shard: str, seq: int) -> str | None:
        rows = await self._fetch("SELECT hash FROM audit_events WHERE shard = ? AND seq = ?", (shard, seq))
        return rows[0][0] if rows else None

    async def iter_chain(self, shard: str) -> AsyncIterator[StoredRow]:  # type: ignore[override]
        cols = ", ".join(ROW_COLUMNS)
        last = -1
        while True:
            rows = await self._fetch(
                f"SELECT {cols} FROM audit_events WHERE shard = ? AND seq > ? ORDER BY seq LIMIT ?",
                (shard, last, _VERIFY_PAGE),
            )
            for r in rows:
                yield StoredRow(r[0], r[1], r[2], r[3], tuple(r[4:-3]), r[-3], r[-2], r[-1])
            if len(rows) < _VERIFY_PAGE:
                return
            last = rows[-1][2]

    # --- queries -----------------------------------------------------------------------
    async def query_raw(
        self, filters: Filters, *, after: tuple[float, str] | None = None, limit: int = 100, desc: bool = True
    ) -> list[tuple[float, str, str, str]]:
        query, params = sql.page_sql(_D, filters, after, limit, desc)
        return await self._fetch(query, params)

    async def get(self, event_id: str) -> dict[str, Any] | None:
        rows = await self._fetch("SELECT hash, body FROM audit_events WHERE id = ?", (event_id,))
        return event_of(rows[0][1], rows[0][0]) if rows else None

    async def spend(self, group_by: str, filters: Filters) -> list[dict[str, Any]]:
        query, params = sql.spend_sql(_D, group_by, filters)
        return [
            {"group": r[0], "calls": r[1], "input_tokens": r[2], "output_tokens": r[3], "cost_nusd": r[4]}
            for r in await self._fetch(query, params)
        ]

    # --- retention ---------------------------------------------------------------------
    async def plan_prune(self, cutoff_ts: float) -> dict[str, Anchor]:
        plan: dict[str, Anchor] = {}
        for shard, young, first, last in await self._fetch(sql.prune_plan_sql(_D), (cutoff_ts,)):
            if young is not None and young > first:
                rows = await self._fetch(
                    "SELECT prev_hash FROM audit_events WHERE shard = ? AND seq = ?", (shard, young)
                )
                plan[shard] = Anchor(young, rows[0][0])
            elif young is None:
                rows = await self._fetch("SELECT hash FROM audit_events WHERE shard = ? AND seq = ?", (shard, last))
                plan[shard] = Anchor(last + 1, rows[0][0])
        return plan

    def _apply_prune(self, anchors: dict[str, Anchor], ts: float) -> int:
        db = self._w.db
        if db is None:
            raise RuntimeError("sqlite audit store is not open")
        deleted = 0
        db.execute("BEGIN IMMEDIATE")
        try:
            for shard, anchor in anchors.items():
                cur = db.execute("DELETE FROM audit_events WHERE shard = ? AND seq < ?", (shard, anchor.seq))
                deleted += cur.rowcount
                db.execute(sql.upsert_anchor_sql(_D), (shard, anchor.seq, anchor.prev_hash, ts))
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return deleted

    async def apply_prune(self, anchors: dict[str, Anchor]) -> int:
        return await self._w.run(self._apply_prune, anchors, time.time())
