"""The embedded audit store: one SQLite file in WAL mode.

Each connection has its own single thread (writer, readers, checkpointer), and a whole batch
runs as one function: one commit per group. WAL lets queries and exports read while the
writer commits, and the WAL is checkpointed in the background, never inside an event's commit.

``synchronous=NORMAL`` survives a process crash; ``FULL`` also survives power loss. Under
``NORMAL`` a WAL commit is a ``write()`` into the page cache with no fsync, ~60 µs for one
event: cheaper than the two thread switches (loop -> writer thread -> loop) it would cost to
run it elsewhere, which on a busy core were ~100 µs and most of the latency audit added. So a
small batch commits right on the event loop's thread, and goes to the writer thread only when
it may wait: a big batch, ``FULL`` (one fsync per commit), another process holding the write
lock (SQLITE_BUSY: the thread waits for it with a busy timeout, the loop never does), or the
first commit after a completed checkpoint (it restarts the WAL, which fsyncs its header).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from gateway.audit.chain import Head
from gateway.audit.schema import ROW_COLUMNS
from gateway.audit.store import sql
from gateway.audit.store.base import Anchor, AuditStore, ChainInfo, Filters, event_of
from gateway.audit.store.sqlite_inline import InlineReader

T = TypeVar("T")
_D = sql.SQLITE
#: 2: the chain registry's index; 3: content captures; 4: partial filter indexes (narrow_ddl)
_SCHEMA_VERSION = 4
_VERIFY_PAGE = 10_000
#: WAL checkpoint roughly every this many rows written (~1.5 KB of WAL per row with indexes).
_CHECKPOINT_AFTER = 2000
#: Largest batch committed on the event loop's thread (~15 µs per row beyond the first ~60 µs).
_INLINE_ROWS = 64
_BUSY_TIMEOUT_MS = 10_000
log = logging.getLogger("wardgate.audit")


class _Conn:
    """A sqlite3 connection pinned to one worker thread."""

    def __init__(
        self, path: Path, synchronous: str, name: str, autocheckpoint: bool = True, readonly: bool = False
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"audit-sqlite-{name}")
        self._path = path
        self._synchronous = synchronous
        self._autocheckpoint = autocheckpoint
        self._readonly = readonly
        self.db: sqlite3.Connection | None = None

    def _connect(self) -> None:
        if self._readonly:
            uri = self._path.resolve().as_uri() + "?mode=ro"
            self.db = sqlite3.connect(
                uri, uri=True, isolation_level=None, check_same_thread=False, timeout=10.0
            )
            return
        db = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, timeout=10.0)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
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
    dialect = _D

    def __init__(self, path: Path, synchronous: str = "NORMAL") -> None:
        self.path = Path(path)
        #: Small batches commit on the loop's thread; only ``NORMAL`` commits never fsync.
        self._inline = synchronous.upper() == "NORMAL"
        # The writer never checkpoints (that would put the WAL copy-back and its fsync inside
        # some unlucky event's commit); a third connection does it in the background.
        self._w = _Conn(self.path, synchronous, "w", autocheckpoint=False)
        #: One write transaction at a time on the writer connection (appends and pruning).
        self._write_lock = asyncio.Lock()
        #: The next commit restarts the WAL (a checkpoint completed), which fsyncs: not inline.
        self._wal_restart = False
        self._r = _Conn(self.path, synchronous, "r")
        self._c = _Conn(self.path, synchronous, "ckpt")
        self._since_checkpoint = 0
        self._checkpointing: asyncio.Task[Any] | None = None
        #: ``verify`` run inline (its own thread): reads in that thread (sqlite_inline.py).
        self._reader_here: InlineReader | None = None
        self._insert = sql.insert_sql(_D)
        self._upsert_head = sql.upsert_head_sql(_D)

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        await self._w.open()
        await self._w.run(self._migrate)
        # From now on an inline BEGIN must fail at once when locked, not block the loop
        # (``_waiting`` raises the timeout again on the writer thread, where waiting is fine).
        await self._w.run(self._writer().execute, "PRAGMA busy_timeout=0")
        await self._r.open()
        await self._c.open()

    def _migrate(self) -> None:
        db = self._w.db
        if db is None:
            raise RuntimeError("sqlite audit store is not open")
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version < _SCHEMA_VERSION:
            stmts = sql.ddl(_D) + sql.registry_ddl() + sql.capture_ddl(_D) if version < 3 else []
            db.execute("BEGIN IMMEDIATE")
            try:
                for stmt in stmts + sql.narrow_ddl():
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
        if self._reader_here is not None:
            self._reader_here.close()
            self._reader_here = None

    def _reader(self) -> sqlite3.Connection:
        if self._r.db is None:
            raise RuntimeError("sqlite audit store is not open")
        return self._r.db

    async def ping(self) -> None:
        await self._r.run(lambda: self._reader().execute("SELECT 1").fetchone())

    # --- writes ------------------------------------------------------------------------
    def _writer(self) -> sqlite3.Connection:
        if self._w.db is None:
            raise RuntimeError("sqlite audit store is not open")
        return self._w.db

    def _transaction(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work`` in one write transaction; BEGIN raises SQLITE_BUSY at once if locked."""
        db = self._writer()
        db.execute("BEGIN IMMEDIATE")
        try:
            result = work(db)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return result

    def _waiting(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``_transaction`` that waits for the write lock (on the writer thread only)."""
        db = self._writer()
        db.execute(f"PRAGMA busy_timeout={_BUSY_TIMEOUT_MS}")
        try:
            return self._transaction(work)
        finally:
            db.execute("PRAGMA busy_timeout=0")

    async def _write(self, work: Callable[[sqlite3.Connection], T], *, inline: bool) -> T:
        async with self._write_lock:
            if inline:
                try:
                    return self._transaction(work)
                except sqlite3.OperationalError as exc:
                    # Locked by another process: rolled back, retried where it may wait.
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                        raise
            return await self._w.run(self._waiting, work)

    async def append(self, shard: str, rows: list[tuple[Any, ...]], head: Head) -> None:
        ts = time.time()

        def work(db: sqlite3.Connection) -> None:
            if len(rows) == 1:
                db.execute(self._insert, rows[0])
            else:
                db.executemany(self._insert, rows)
            db.execute(self._upsert_head, (shard, head.seq, head.hash, ts))

        inline = self._inline and len(rows) <= _INLINE_ROWS and not self._wal_restart
        self._wal_restart = False
        await self._write(work, inline=inline)
        self._since_checkpoint += len(rows) + 8  # a commit costs pages beyond its rows (indexes, head)
        if self._since_checkpoint >= _CHECKPOINT_AFTER and (
            self._checkpointing is None or self._checkpointing.done()
        ):
            self._since_checkpoint = 0
            self._checkpointing = asyncio.create_task(self._run_checkpoint())

    async def _run_checkpoint(self) -> None:
        if await self._c.run(self._checkpoint):
            self._wal_restart = True

    def _checkpoint(self) -> bool:
        """Copy the WAL back without blocking the writer (PASSIVE); failures just retry later.

        True when the whole WAL was copied back: the next commit then restarts the WAL.
        """
        db = self._c.db
        if db is not None:
            try:
                busy, frames, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                return not busy and frames >= 0 and frames == copied
            except sqlite3.Error as exc:
                log.warning("audit sqlite checkpoint failed: %s", exc)
        return False

    # --- chain bookkeeping -------------------------------------------------------------
    async def _fetch(self, query: str, params: tuple[Any, ...] | list[Any] = ()) -> list[Any]:
        return await self._r.run(lambda: self._reader().execute(query, params).fetchall())

    async def head(self, shard: str) -> Head | None:
        rows = await self._fetch("SELECT seq, hash FROM audit_heads WHERE shard = ?", (shard,))
        return Head(rows[0][0], rows[0][1]) if rows else None

    async def heads(self, since_ts: float = 0.0) -> dict[str, Head]:
        rows = await self._fetch("SELECT shard, seq, hash FROM audit_heads WHERE ts >= ?", (since_ts,))
        return {r[0]: Head(r[1], r[2]) for r in rows}

    async def chains(self) -> list[ChainInfo]:
        return [ChainInfo(r[0], Head(r[1], r[2]), r[3], r[4]) for r in await self._fetch(sql.CHAINS_SQL)]

    async def abandoned_marks(self) -> list[str]:
        return [r[0] for r in await self._fetch(sql.ABANDONED_SQL)]

    async def renew(self, shard: str) -> None:
        def work(db: sqlite3.Connection) -> None:
            db.execute("UPDATE audit_heads SET ts = ? WHERE shard = ?", (time.time(), shard))

        await self._write(work, inline=False)

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

    def pages_here(self, shard: str) -> Iterator[list[tuple[Any, ...]]]:
        """``verify`` inline: ``iter_pages``' rows, read in the calling thread (sqlite_inline.py)."""
        if self._reader_here is None:
            self._reader_here = InlineReader(self.path)
        return self._reader_here.pages(shard)

    async def iter_pages(self, shard: str) -> AsyncIterator[list[tuple[Any, ...]]]:
        # The body as a BLOB: the bytes verify hashes, without a decode here and an encode there.
        cols = ", ".join(ROW_COLUMNS[:-1]) + ", CAST(body AS BLOB)"
        last = -1
        while True:
            rows = await self._fetch(
                f"SELECT {cols} FROM audit_events WHERE shard = ? AND seq > ? ORDER BY seq LIMIT ?",
                (shard, last, _VERIFY_PAGE),
            )
            if rows:
                yield rows
            if len(rows) < _VERIFY_PAGE:
                return
            last = rows[-1][2]

    # --- queries -----------------------------------------------------------------------
    async def query_raw(
        self, filters: Filters, *, after: tuple[float, str] | None = None, limit: int = 100, desc: bool = True
    ) -> list[tuple[float, str, str, str]]:
        query, params = sql.page_sql(_D, filters, after, limit, desc)
        return await self._fetch(query, params)

    async def snapshot(
        self, filters: Filters, chain: str | None = None, since_seq: int | None = None, page: int = 1000
    ) -> AsyncIterator[list[tuple[str, int, str, str, str]]]:
        """One read transaction (WAL: a snapshot as of its first read) on a read-only
        connection and thread of its own, one statement fetched a page at a time. While it is
        open the WAL cannot be checkpointed past it: exports should not idle for hours."""
        query, params = sql.snapshot_sql(_D, filters, chain, since_seq)
        conn = _Conn(self.path, "NORMAL", "export", readonly=True)
        await conn.open()
        try:
            db = conn.db
            assert db is not None
            await conn.run(db.execute, "BEGIN")
            cursor = await conn.run(db.execute, query, params)
            while True:
                rows = await conn.run(cursor.fetchmany, page)
                if rows:
                    yield rows
                if len(rows) < page:
                    return
        finally:
            await conn.close()

    async def get(self, event_id: str) -> dict[str, Any] | None:
        rows = await self._fetch("SELECT hash, body FROM audit_events WHERE id = ?", (event_id,))
        return event_of(rows[0][1], rows[0][0]) if rows else None

    async def spend(self, group_by: str, filters: Filters) -> list[dict[str, Any]]:
        query, params = sql.spend_sql(_D, group_by, filters)
        return [
            {
                "group": r[0],
                "calls": r[1],
                "input_tokens": r[2],
                "output_tokens": r[3],
                "cost_nusd": r[4],
                "cache_hits": int(r[5]),
                "cache_lookups": int(r[6]),
                "saved_nusd": int(r[7]),
                "tool_calls": int(r[8]),
                "tool_cost_nusd": int(r[9]),
            }
            for r in await self._fetch(query, params)
        ]

    async def select(self, query: str, params: list[Any]) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in await self._fetch(query, params)]

    # --- content captures --------------------------------------------------------------
    async def put_capture(self, event_id: str, ts: float, run_id: str | None, digest: str, body: str) -> None:
        stmt = sql.put_capture_sql(_D)
        inline = self._inline and not self._wal_restart and len(body) < 65536
        await self._write(lambda db: db.execute(stmt, (event_id, ts, run_id, digest, body)), inline=inline)

    async def captures(self, event_ids: list[str]) -> dict[str, tuple[str, str]]:
        if not event_ids:
            return {}
        marks = ", ".join("?" for _ in event_ids)
        rows = await self._fetch(
            f"SELECT event_id, hash, body FROM audit_captures WHERE event_id IN ({marks})", event_ids
        )
        return {r[0]: (r[1], r[2]) for r in rows}

    async def prune_captures(self, cutoff_ts: float) -> int:
        def work(db: sqlite3.Connection) -> int:
            return db.execute("DELETE FROM audit_captures WHERE ts < ?", (cutoff_ts,)).rowcount

        return await self._write(work, inline=False)

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
                rows = await self._fetch(
                    "SELECT hash FROM audit_events WHERE shard = ? AND seq = ?", (shard, last)
                )
                plan[shard] = Anchor(last + 1, rows[0][0])
        return plan

    async def apply_prune(self, anchors: dict[str, Anchor]) -> int:
        ts = time.time()
        upsert = sql.upsert_anchor_sql(_D)

        def work(db: sqlite3.Connection) -> int:
            deleted = 0
            for shard, anchor in anchors.items():
                cur = db.execute("DELETE FROM audit_events WHERE shard = ? AND seq < ?", (shard, anchor.seq))
                deleted += cur.rowcount
                db.execute(upsert, (shard, anchor.seq, anchor.prev_hash, ts))
            return deleted

        return await self._write(work, inline=False)
