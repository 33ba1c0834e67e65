"""The audit service other areas use: ``await audit.record(kind, payload)`` (an ``AuditRecorder``).

It owns this process's chain (see ``chain.py``), the group-commit writer, the periodic
checkpoint that witnesses the other chains, retention, and this chain's place in the chain
registry: ``chain_open`` names the instance and its predecessor, ``chain_close`` ends a clean
stop, a lease (the head row's ``ts``, renewed while the process lives) tells a dead chain from
an idle one, and dead chains are named by a ``chain_abandoned`` event on a live chain. ``record`` returns only when the
event is durable and raises ``AuditUnavailable`` (503) when it cannot be made so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING, Any

import orjson

from gateway.audit import retention
from gateway.audit.anchors import anchor_record, check_destination, write_anchor
from gateway.audit.chain import ShardChain, instance_of, new_shard_id
from gateway.audit.config import AuditSettings
from gateway.audit.events import base_event, build_record_event
from gateway.audit.lease import declared_lease
from gateway.audit.schema import (
    CHAIN_KINDS,
    KIND_CHAIN_ABANDONED,
    KIND_CHAIN_CLOSE,
    KIND_CHAIN_OPEN,
    KIND_CHECKPOINT,
)
from gateway.audit.signing import load_private_key, sign
from gateway.audit.store.base import AuditStore, ChainInfo
from gateway.audit.store.log import EventLines
from gateway.audit.writer import GroupCommitWriter
from gateway.errors import AuditUnavailable, ServiceUnavailable

if TYPE_CHECKING:
    from gateway.observability.metrics import Metrics

log = logging.getLogger("wardgate.audit")


class AuditService:
    def __init__(
        self,
        settings: AuditSettings,
        store: AuditStore,
        *,
        metrics: Metrics | None = None,
        shard: str | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.shard = shard or new_shard_id(settings.shard_id)
        self.chain = ShardChain(self.shard)
        #: ``audit.log_events``: a verifiable JSON line per event beside a database store.
        self.lines = EventLines(settings.log_path) if settings.log_events and store.name != "log" else None
        self.writer = GroupCommitWriter(
            store,
            self.chain,
            batch_size=settings.batch_size,
            interval_s=settings.batch_interval_ms / 1000.0,
            max_pending=settings.max_pending,
            on_commit=self._committed,
            on_failure=self._failed,
            mirror=self.lines.write if self.lines is not None else None,
        )
        self.signing_key = load_private_key(settings.signing_key_file, settings.signing_key_env)
        if settings.anchor_to is not None:
            check_destination(settings.anchor_to, settings.anchor_s3)
            if self.signing_key is None:
                raise ValueError(
                    f"audit.anchor_to needs a signing key (audit.signing_key_file or ${settings.signing_key_env})"
                )
        #: When this process last wrote an anchor (0: never; the first one lists every chain).
        self._anchored_at = 0.0
        self._since_checkpoint = 0
        self._checkpoint_due = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False
        #: Why the store could not be opened, while it has been down since start (else None).
        self.open_error: str | None = None
        #: Events ``record_at_open`` keeps for the moment the store opens.
        self._at_open: list[dict[str, Any]] = []

    # --- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        """Open the store and this chain. A store that is down (``store.unreachable``) is not a
        start-up error: the service starts closed (``/readyz`` 503 naming the server, every
        record refused, the ``audit_ready`` stage refusing calls before they are forwarded)
        and keeps opening in the background until it succeeds; no restart needed."""
        try:
            await self._open()
        except Exception as exc:
            if not self._down(exc):
                raise
            self.open_error = f"{type(exc).__name__}: {exc}"
            log.warning(
                "audit store %s unreachable at start (%s); retrying", self.store.where, self.open_error
            )
            self._tasks.append(asyncio.create_task(self._open_loop(), name="audit-open"))
            return
        self._start_loops()

    def _down(self, exc: BaseException) -> bool:
        """Whether the failed open was an outage (retry) rather than a setting (refuse the start)."""
        seen: BaseException | None = exc
        while seen is not None:
            if self.store.unreachable(seen) or isinstance(seen, AuditUnavailable):
                return True  # AuditUnavailable: the store went away between connect and chain_open
            seen = seen.__cause__ or seen.__context__
        return False

    async def _open(self) -> None:
        await self.store.open()
        if self.lines is not None:
            self.lines.open()
        try:
            head = await self.store.head(self.shard)
            if head is not None:  # an explicit shard name reused: continue its chain
                self.chain.advance(head)
            self.writer.start()
            chains = await self._chains()
            opening = await self._witness_event(KIND_CHAIN_OPEN)
            opening["data"] |= {"instance": instance_of(self.shard), "predecessor": self._predecessor(chains)}
            opening["data"]["lease_s"] = self.settings.chain_lease_s  # others judge this chain by it
            await self._submit(opening)
            while self._at_open:  # recorded while the store was down at start: right after chain_open
                await self._submit(self._at_open[0])
                self._at_open.pop(0)
            await self._mark_abandoned(chains)
        except BaseException:
            await self.writer.close()
            await self.store.close()
            if self.lines is not None:
                self.lines.close()
            raise
        self.open_error = None

    async def _open_loop(self) -> None:
        delay = 0.25
        while True:
            await asyncio.sleep(delay)
            try:
                await self._open()
            except Exception as exc:
                if not self._down(exc):  # e.g. the schema's migration refused: say so, keep trying
                    log.error("audit store %s cannot be opened: %s", self.store.where, exc)
                self.open_error = f"{type(exc).__name__}: {exc}"
                delay = min(delay * 2, 2.0)
                continue
            log.warning("audit store %s reachable: chain %s open", self.store.where, self.shard)
            self._start_loops()
            return

    @property
    def opened(self) -> bool:
        """Whether the store was opened (``False`` only while it has been down since start)."""
        return self.open_error is None

    async def record_at_open(self, kind: str, payload: dict[str, Any]) -> None:
        """``record``, or, while the store has been down since start, keep the event to be
        written first when it opens (right after ``chain_open``): the start's policy revision.
        Nothing is decided under it meanwhile (every call is refused while the store is down),
        so the chain still shows the revision before any call it decided."""
        if self.opened:
            await self.record(kind, payload)
        else:
            self._at_open.append(build_record_event(kind, payload))

    def _start_loops(self) -> None:
        self._tasks.append(asyncio.create_task(self._checkpoint_loop(), name="audit-checkpoint"))
        if self.store.queryable:
            self._tasks.append(asyncio.create_task(self._lease_loop(), name="audit-lease"))
        if self.settings.anchor_to is not None and self.store.queryable:
            self._tasks.append(asyncio.create_task(self._anchor_loop(), name="audit-anchor"))
        wants_retention = self.settings.retention_days or self.settings.capture_retention_days
        if wants_retention is not None and self.store.queryable:
            self._tasks.append(asyncio.create_task(self._retention_loop(), name="audit-retention"))

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        if not self.opened:  # never opened: no chain to close, nothing queued
            await self.store.close()
            return
        try:
            await self._submit(base_event(KIND_CHAIN_CLOSE) | {"data": {"reason": "shutdown"}})
        except ServiceUnavailable as exc:
            log.warning("audit chain %s closed without its close event: %s", self.shard, exc.message)
        await self.writer.close()
        await self.store.close()
        if self.lines is not None:
            self.lines.close()

    async def ready(self) -> None:
        """Readiness: the store answers and commits succeed.

        After a failed commit the probe itself tries a checkpoint, so readiness comes back as
        soon as the store does, even with no traffic to prove it.
        """
        if not self.opened:
            raise AuditUnavailable(f"audit store {self.store.where} unreachable: {self.open_error}")
        if not self.writer.healthy:
            try:
                await self.checkpoint()
            except AuditUnavailable:
                raise AuditUnavailable(f"audit writes failing: {self.writer.last_error}") from None
        await self.store.ping()

    # --- writing -----------------------------------------------------------------------
    async def record(self, kind: str, payload: dict[str, Any]) -> None:
        """Append an event (approval change, admin action, policy revision...) durably."""
        await self.record_event(build_record_event(kind, payload))

    async def record_event(self, event: dict[str, Any]) -> None:
        """Append a built event (see ``events.py``); returns once it is durable."""
        t0 = time.perf_counter()
        try:
            if self.open_error is not None:
                raise AuditUnavailable(
                    f"The audit log is unavailable: its store ({self.store.where}) is unreachable."
                )
            await self._submit(event)
        except AuditUnavailable:
            if self.metrics is not None:
                self.metrics.audit_rejected(event.get("kind", "?"))
            raise
        if self.metrics is not None:
            self.metrics.audit_recorded(event.get("kind", "?"), time.perf_counter() - t0)
        if self._since_checkpoint >= self.settings.checkpoint_every:
            self._checkpoint_due.set()

    async def _submit(self, event: dict[str, Any]) -> None:
        await self.writer.submit(event)

    def _committed(self, events: list[dict[str, Any]], seconds: float) -> None:
        self._since_checkpoint += sum(1 for ev in events if ev.get("kind") not in CHAIN_KINDS)
        if self.metrics is not None:
            self.metrics.audit_committed(len(events), seconds)

    def _failed(self, exc: BaseException) -> None:
        if self.metrics is not None:
            self.metrics.audit_failed()

    # --- checkpoints -------------------------------------------------------------------
    async def _witness_event(self, kind: str) -> dict[str, Any]:
        since = time.time() - self.settings.witness_window_days * 86400
        try:
            heads = await self.store.heads(since)
        except Exception as exc:  # the store is down: same answer as a failed commit
            raise AuditUnavailable(f"audit store unreachable: {type(exc).__name__}: {exc}") from exc
        witness = {s: {"seq": h.seq, "hash": h.hash} for s, h in sorted(heads.items()) if s != self.shard}
        return base_event(kind) | {"data": {"witness": witness}}

    async def checkpoint(self) -> None:
        """Seal a checkpoint: this chain's position plus the witnessed heads of the others."""
        event = await self._witness_event(KIND_CHECKPOINT)
        event["data"]["events_since_last"] = self._since_checkpoint
        head = self.chain.head  # durable: the head advances only after a commit
        if head.seq > 0:
            event["data"]["head"] = {"seq": head.seq, "hash": head.hash}
            if self.signing_key is not None:
                payload = {"shard": self.shard, "seq": head.seq, "hash": head.hash}
                event["data"]["sig"] = sign(self.signing_key, payload)
        self._since_checkpoint = 0
        await self._submit(event)

    async def _checkpoint_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._checkpoint_due.wait(), self.settings.checkpoint_interval_s)
            self._checkpoint_due.clear()
            if self._since_checkpoint == 0:
                continue
            try:
                await self.checkpoint()
            except ServiceUnavailable as exc:
                log.warning("audit checkpoint failed: %s", exc.message)

    # --- anchors -----------------------------------------------------------------------
    async def anchor(self) -> dict[str, Any]:
        """Sign the chains' heads and write them to ``audit.anchor_to`` (outside the store).

        This process's first anchor lists every chain; later ones only the chains whose head
        moved (or lease was renewed) since the previous anchor, with an interval's margin: a
        chain that stopped was listed when it last moved, and every anchor is checked, so an
        anchor stays small however many chains restarts have left behind.
        """
        if self.signing_key is None or self.settings.anchor_to is None:
            raise ValueError("anchoring needs audit.anchor_to and a signing key")
        now = time.time()
        since = self._anchored_at - self.settings.anchor_interval_s if self._anchored_at else float("-inf")
        heads = {c.shard: c.head for c in await self._chains() if c.ts >= since}
        record = anchor_record(self.signing_key, heads, self.shard, now)
        await write_anchor(self.settings.anchor_to, record, self.settings.anchor_s3)
        self._anchored_at = now
        return record

    @property
    def anchored_at(self) -> float | None:
        """When this process last wrote a signed anchor (None: never; the console shows it)."""
        return self._anchored_at or None

    async def _anchor_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.anchor_interval_s)
            try:
                await self.anchor()
            except Exception as exc:  # loud, and retried next round; calls are not failed for it
                log.error("audit anchor failed: %s", exc)

    # --- chain registry ----------------------------------------------------------------
    async def _chains(self) -> list[ChainInfo]:
        try:
            return await self.store.chains()
        except Exception as exc:  # the store is down: same answer as a failed commit
            raise AuditUnavailable(f"audit store unreachable: {type(exc).__name__}: {exc}") from exc

    def _predecessor(self, chains: list[ChainInfo]) -> str | None:
        """The latest other chain of this instance (the process this one replaces, usually)."""
        mine = instance_of(self.shard)
        same = [c for c in chains if c.shard != self.shard and instance_of(c.shard) == mine]
        return max(same, key=lambda c: c.ts).shard if same else None

    async def _mark_abandoned(self, chains: list[ChainInfo] | None = None) -> int:
        """Name every dead chain (no ``chain_close``, its own lease expired: lease.py) once, with
        its last head. From then on ``verify`` flags any event of that chain past the named
        head: a dead process cannot write, so such an event was appended by someone else."""
        chains = await self._chains() if chains is None else chains
        stale_s = self.settings.chain_lease_s
        stale = time.time() - stale_s
        dead = [
            c for c in chains if c.shard != self.shard and c.last_kind != KIND_CHAIN_CLOSE and c.ts < stale
        ]
        if not dead:
            return 0
        named = set()
        for body in await self.store.abandoned_marks():
            data = orjson.loads(body).get("data") or {}
            named.add(data.get("shard"))
        marked = 0
        for c in dead:
            if c.shard in named or c.ts >= time.time() - await declared_lease(self.store, c.shard, stale_s):
                continue
            data = {"shard": c.shard, "seq": c.head.seq, "hash": c.head.hash, "last_seen": c.ts}
            await self._submit(base_event(KIND_CHAIN_ABANDONED) | {"data": data})
            marked += 1
        return marked

    async def _lease_loop(self) -> None:
        """Renew this chain's lease and name chains that died since, every third of the lease."""
        while True:
            await asyncio.sleep(self.settings.chain_lease_s / 3)
            try:
                await self.store.renew(self.shard)
                await self._mark_abandoned()
            except Exception as exc:  # the next round retries; commits report store failures
                log.warning("audit chain lease renewal failed: %s", exc)

    # --- retention ---------------------------------------------------------------------
    async def prune(self, now: float | None = None) -> int:
        """Delete events older than the retention window, keeping the rest verifiable."""
        if self.settings.retention_days is None:
            return 0
        cutoff = (time.time() if now is None else now) - self.settings.retention_days * 86400
        return await retention.prune(self.store, cutoff, self._submit)

    async def prune_captures(self, now: float | None = None) -> int:
        """Delete content captures older than their own retention (the chain is untouched)."""
        if self.settings.capture_retention_days is None:
            return 0
        cutoff = (time.time() if now is None else now) - self.settings.capture_retention_days * 86400
        return await self.store.prune_captures(cutoff)

    async def _retention_loop(self) -> None:
        while True:
            try:
                deleted = await self.prune()
                if deleted:
                    log.info("audit retention pruned %d events", deleted)
                captures = await self.prune_captures()
                if captures:
                    log.info("audit retention pruned %d content captures", captures)
            except Exception:  # retention must never stop the gateway; the next round retries
                log.exception("audit retention failed")
            await asyncio.sleep(self.settings.retention_check_s)
