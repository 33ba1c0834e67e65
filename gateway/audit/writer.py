"""Group commit: many ``record`` calls, one transaction; each returns once its event is durable.

The writer commits as soon as it is free: events that arrive while a commit is in flight wait
for the next one, so under load the batch size grows by itself and at low load an event never
waits for a timer. ``batch_interval_ms`` adds an optional linger for stores where fewer,
larger commits pay off more than the latency they cost.

On a store whose commit waits on a server (``append_awaits_io``), an event that finds the
writer idle is committed by its own caller: the hand-off to the writer task and back is two
event-loop turns on every quiet-time call, and batching is unchanged, since whatever arrives
during that commit queues for the writer as before. On SQLite the small commit runs on the
loop's thread, so nothing can queue behind a caller's commit: committing in the caller would
give up batching under load (c=16 through the MCP gateway: 6.8 events per commit). There the
caller commits only while nobody else is writing: after ``SOLO_AFTER`` writer commits of one
event in a row (one call at a time: no batch to wait for, the hand-off is ~10-18 µs of CPU
and a loop turn per event), and every ``RESAMPLE``-th event still goes through the writer, so
a batch of more than one (others arriving with it) ends the caller's commits at once.

The chain head advances only after a commit succeeded. After a failure the head is re-read
from the store before the next batch, because a commit whose acknowledgement was lost may
still have landed.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable
from typing import Any

from gateway.audit.chain import ShardChain
from gateway.audit.store.base import AuditStore
from gateway.errors import AuditUnavailable

log = logging.getLogger("wardgate.audit")

Pending = tuple[dict[str, Any], "asyncio.Future[None]"]
#: Writer commits of a single event in a row after which a caller commits its own (SQLite).
SOLO_AFTER = 8
#: While callers commit their own, one event in this many goes through the writer (a sample).
RESAMPLE = 16


class GroupCommitWriter:
    def __init__(
        self,
        store: AuditStore,
        chain: ShardChain,
        *,
        batch_size: int = 512,
        interval_s: float = 0.0,
        max_pending: int = 50_000,
        on_commit: Callable[[list[dict[str, Any]], float], None] | None = None,
        on_failure: Callable[[BaseException], None] | None = None,
        mirror: Callable[[list[tuple[Any, ...]]], None] | None = None,
    ) -> None:
        self.store = store
        self.chain = chain
        self.batch_size = batch_size
        self.interval_s = interval_s
        self.max_pending = max_pending
        self._on_commit = on_commit
        self._on_failure = on_failure
        #: Gets each committed batch's sealed rows, in commit order (``audit.log_events``).
        self._mirror = mirror
        self._queue: collections.deque[Pending] = collections.deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._stale = False
        #: A commit is running (the writer's or a caller's): the chain is sealed in commit order.
        self._committing = False
        self._inline = store.append_awaits_io and interval_s <= 0
        #: Single-event writer commits in a row, and caller commits left before the next sample.
        self._singles = 0
        self._solo_left = RESAMPLE
        #: Monotonic time of the last failed commit, and whether a commit succeeded since.
        self.last_failure: float | None = None
        self.last_error: str | None = None
        self.healthy = True

    @property
    def pending(self) -> int:
        return len(self._queue)

    def start(self) -> None:
        """Start the writer task (again after ``close``: an open retried after a failed one)."""
        if self._task is None:
            self._closing = False
            self._task = asyncio.create_task(self._run(), name="audit-writer")

    async def submit(self, event: dict[str, Any]) -> None:
        """Queue one event and return when it is durable; raise ``AuditUnavailable`` otherwise."""
        if self._closing or self._task is None or self._task.done():
            raise AuditUnavailable("The audit writer is not running.")
        if len(self._queue) >= self.max_pending:
            raise AuditUnavailable("The audit log is overloaded (too many events waiting for a commit).")
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_consume)
        if not self._committing and not self._queue and (self._inline or self._solo()):
            await self._commit_now([(event, fut)])
            fut.result()  # AuditUnavailable if the commit failed
            return
        self._queue.append((event, fut))
        self._wake.set()
        # A caller that goes away (client disconnect) cancels only its future: the event stays
        # queued and is committed anyway (``_commit`` skips futures that are already done).
        await fut

    def _solo(self) -> bool:
        """Nobody else is writing (see the module's doc): this event may be committed by its caller."""
        if self.interval_s > 0 or self._singles < SOLO_AFTER:
            return False
        self._solo_left -= 1
        if self._solo_left < 0:
            self._solo_left = RESAMPLE  # this one goes through the writer: does it come alone?
            return False
        return True

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.interval_s > 0 and len(self._queue) < self.batch_size and not self._closing:
                await asyncio.sleep(self.interval_s)
            while self._queue and not self._committing:
                n = min(len(self._queue), self.batch_size)
                self._singles = self._singles + 1 if n == 1 else 0
                await self._commit_now([self._queue.popleft() for _ in range(n)])
            if self._closing and not self._committing:
                return

    async def _commit_now(self, batch: list[Pending]) -> None:
        """Commit one batch, one commit at a time; then wake the writer for what queued meanwhile."""
        self._committing = True
        try:
            await self._commit(batch)
        finally:
            self._committing = False
            if self._queue or self._closing:
                self._wake.set()

    async def _commit(self, batch: list[Pending]) -> None:
        t0 = time.perf_counter()
        try:
            if self._stale:
                head = await self.store.head(self.chain.shard)
                if head is not None:
                    self.chain.advance(head)
                self._stale = False
            sealed = self.chain.seal([ev for ev, _ in batch])
            await self.store.append(self.chain.shard, sealed.rows, sealed.head)
        except asyncio.CancelledError:
            # A caller committing inline was cancelled mid-commit (a shutdown past its grace
            # period, with the store hanging): whether the batch landed is unknown, so the
            # head is re-read before the next one.
            self._stale = True
            raise
        except Exception as exc:  # any store failure fails exactly this batch, loudly
            self._stale = True
            self.healthy = False
            self.last_failure = time.monotonic()
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.error("audit commit of %d events failed: %s", len(batch), self.last_error)
            if self._on_failure is not None:
                self._on_failure(exc)
            for _, fut in batch:
                if not fut.done():
                    fut.set_exception(AuditUnavailable("The audit log could not record this call."))
            return
        self.chain.advance(sealed.head)
        self.healthy = True
        if self._mirror is not None:
            try:
                self._mirror(sealed.rows)
            except Exception as exc:  # the events are durable in the store; the copy is not
                log.error("audit log_events copy of %d events failed: %s", len(batch), exc)
        if self._on_commit is not None:
            self._on_commit([ev for ev, _ in batch], time.perf_counter() - t0)
        for _, fut in batch:
            if not fut.done():
                fut.set_result(None)

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
        self._task = None


def _consume(fut: asyncio.Future[None]) -> None:
    """Mark a failure as seen: its caller may have gone away and will not read it."""
    if not fut.cancelled():
        fut.exception()
