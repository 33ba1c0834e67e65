"""The fast write paths keep the guarantees: durable on return, never blocking the loop, chain intact.

SQLite commits small batches on the event loop's thread (by the caller itself while calls come
one at a time); when another process holds the write lock it must wait on the writer thread
(the loop keeps running), not fail and not block.
PostgreSQL writes on a connection of its own; when that connection dies, one batch fails
closed and the next reconnects.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from audit_helpers import PG_DSN, make_call, pg_execute

from gateway.audit.config import AuditSettings
from gateway.audit.events import build_call_event
from gateway.audit.service import AuditService
from gateway.audit.store import make_store
from gateway.audit.store.base import Filters
from gateway.audit.verify import verify
from gateway.audit.writer import RESAMPLE, SOLO_AFTER
from gateway.errors import AuditUnavailable


async def _started(settings: AuditSettings, tmp_path: Path) -> AuditService:
    service = AuditService(settings, make_store(settings, tmp_path))
    await service.start()
    return service


def _commits_by_task(service: AuditService) -> list[tuple[str, int]]:
    """The store's commits from now on, each as (the committing task's name, its events)."""
    commits: list[tuple[str, int]] = []
    append = service.store.append

    async def spy(shard: str, rows: list[tuple[object, ...]], head: object) -> None:
        task = asyncio.current_task()
        commits.append((task.get_name() if task else "?", len(rows)))
        await append(shard, rows, head)  # type: ignore[arg-type]

    service.store.append = spy  # type: ignore[method-assign]
    return commits


async def test_sqlite_write_waits_for_another_process_lock_without_blocking_the_loop(tmp_path):
    settings = AuditSettings(backend="sqlite", sqlite_path=tmp_path / "audit.db")
    service = await _started(settings, tmp_path)
    other = sqlite3.connect(settings.sqlite_path, isolation_level=None, check_same_thread=False)
    try:
        other.execute("BEGIN IMMEDIATE")  # another gateway worker in the middle of its commit
        record = asyncio.create_task(service.record_event(build_call_event(make_call())))
        ticks = 0
        for _ in range(20):
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 20 and not record.done()  # the loop ran on; the event is not durable yet
        other.execute("COMMIT")
        await asyncio.wait_for(record, 10)
        events = await service.store.query(Filters(kind="call"))
        assert len(events) == 1
        # Back on the fast path afterwards.
        await service.record_event(build_call_event(make_call()))
        assert (await verify(service.store)).ok
    finally:
        other.close()
        await service.close()


async def test_sqlite_full_sync_and_large_batches_still_commit_and_verify(tmp_path):
    settings = AuditSettings(backend="sqlite", sqlite_path=tmp_path / "audit.db", sqlite_synchronous="FULL")
    service = await _started(settings, tmp_path)
    try:
        await asyncio.gather(*(service.record_event(build_call_event(make_call())) for _ in range(200)))
        assert len(await service.store.query(Filters(kind="call"), limit=500)) == 200
        assert (await verify(service.store)).ok
    finally:
        await service.close()


async def test_sqlite_one_call_at_a_time_commits_in_its_caller_and_a_crowd_still_batches(tmp_path):
    settings = AuditSettings(backend="sqlite", sqlite_path=tmp_path / "audit.db")
    service = await _started(settings, tmp_path)
    commits = _commits_by_task(service)
    try:
        # One call at a time: after SOLO_AFTER single-event writer commits, each caller commits
        # its own event, and every RESAMPLE-th still goes through the writer (a sample).
        for i in range(SOLO_AFTER + RESAMPLE + 3):
            await asyncio.create_task(service.record_event(build_call_event(make_call())), name=f"call-{i}")
        by = [name for name, _ in commits]
        first = next(i for i, name in enumerate(by) if name != "audit-writer")
        assert 0 < first <= SOLO_AFTER and by[first] == f"call-{first}"  # start-up events count too
        assert by[first:].count("audit-writer") == 1  # the sample
        assert all(n == 1 for _, n in commits)
        # A crowd: once a sample finds company, the writer batches again.
        sizes: list[int] = []
        for _ in range(8):
            before = len(commits)
            await asyncio.gather(*(service.record_event(build_call_event(make_call())) for _ in range(16)))
            sizes.append(len(commits) - before)
        assert sizes[-1] < 16 and any(n > 1 for _, n in commits[-sizes[-1] :])
        # Every answered event is in the store, the chain intact.
        total = SOLO_AFTER + RESAMPLE + 3 + 8 * 16
        assert len(await service.store.query(Filters(kind="call"), limit=1000)) == total
        assert (await verify(service.store)).ok
    finally:
        await service.close()


async def test_postgres_writer_connection_killed_fails_one_batch_then_reconnects(pg_schema, tmp_path):
    settings = AuditSettings(backend="postgres", postgres_dsn=PG_DSN, postgres_schema=pg_schema)
    service = await _started(settings, tmp_path)
    try:
        await service.record_event(build_call_event(make_call()))
        pid = service.store._writer.get_server_pid()  # type: ignore[attr-defined]
        pg_execute(f"SELECT pg_terminate_backend({pid})")
        outcomes = []
        for _ in range(3):
            try:
                await service.record_event(build_call_event(make_call()))
                outcomes.append("ok")
            except AuditUnavailable:
                outcomes.append("refused")
        assert outcomes[-2:] == ["ok", "ok"]  # at most the batch on the dead connection fails
        stored = await service.store.query(Filters(kind="call"))
        assert len(stored) == 1 + outcomes.count("ok")
        assert (await verify(service.store)).ok
    finally:
        await service.close()


@pytest.mark.parametrize("n", [1, 2, 40])
async def test_postgres_batches_of_any_size_keep_the_chain(pg_schema, tmp_path, n):
    settings = AuditSettings(backend="postgres", postgres_dsn=PG_DSN, postgres_schema=pg_schema)
    service = await _started(settings, tmp_path)
    try:
        await asyncio.gather(*(service.record_event(build_call_event(make_call())) for _ in range(n)))
        assert len(await service.store.query(Filters(kind="call"), limit=100)) == n
        assert (await verify(service.store)).ok
    finally:
        await service.close()


async def test_postgres_quiet_time_event_is_committed_by_its_caller_and_the_rest_still_batch(
    pg_schema, tmp_path
):
    settings = AuditSettings(backend="postgres", postgres_dsn=PG_DSN, postgres_schema=pg_schema)
    service = await _started(settings, tmp_path)
    commits = _commits_by_task(service)
    try:
        first = asyncio.create_task(service.record_event(build_call_event(make_call())), name="first-caller")
        await asyncio.sleep(0)  # the writer is idle: the first caller commits its own event
        await asyncio.gather(first, *(service.record_event(build_call_event(make_call())) for _ in range(9)))
        assert commits == [("first-caller", 1), ("audit-writer", 9)]
        # Shutting down while a caller's commit is in flight: close waits for it, then commits
        # the chain's close event after it.
        last = asyncio.create_task(service.record_event(build_call_event(make_call())), name="last-caller")
        await asyncio.sleep(0)
        await asyncio.wait_for(service.close(), 10)
        await last
        # Which task commits the close event is the writer's business (the writer task, or
        # close() itself once the writer has stopped); what matters is the order and that
        # it is one more commit of one row.
        assert commits[2] == ("last-caller", 1) and [n for _, n in commits[3:]] == [1]
    finally:
        await service.close()
    store = make_store(settings, tmp_path)
    await store.open()
    try:
        assert len(await store.query(Filters(kind="call"), limit=100)) == 11
        assert (await verify(store)).ok
    finally:
        await store.close()
