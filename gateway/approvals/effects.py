"""What every approval change causes, whoever causes it: audit record, metrics, webhooks.

A change may come from a stage (create, join, use), a reviewer (the admin API or the CLI)
or the expiry sweep; each must leave the same trace. Side effects run on the replica that
made the change (the others hear it through the change feed, for wake-ups only), so an
event is recorded and counted once.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from typing import Any

import orjson

from gateway.approvals.config import ApprovalSettings
from gateway.approvals.metrics import ApprovalMetrics
from gateway.approvals.model import Approval
from gateway.approvals.store import ApprovalStore, Change
from gateway.approvals.webhooks import WebhookSender
from gateway.errors import AuditUnavailable
from gateway.recorder import RecorderProvider

log = logging.getLogger("wardgate.approvals")


def event_of(old: Approval, new: Approval) -> str | None:
    """The audit event of a change from ``old`` to ``new`` (None: nothing worth recording)."""
    if new.status is not old.status:
        return new.status.value
    if len(new.votes) > len(old.votes):
        return "vote"
    if new.uses > old.uses:
        return "used"
    if new.holder != old.holder:
        return "joined"
    return None


class Effects:
    def __init__(
        self,
        settings: ApprovalSettings,
        store: ApprovalStore,
        metrics: ApprovalMetrics,
        webhooks: WebhookSender,
        audit: RecorderProvider | None,
    ) -> None:
        """``audit()`` is the audit log to record into (``None``: off), looked up per record."""
        self._settings = settings
        self._store = store
        self._metrics = metrics
        self._webhooks = webhooks
        self._recorder = audit
        self._gauge_task: asyncio.Task[None] | None = None
        self._gauge_dirty = False
        #: The service is closing: no new gauge refresh is started.
        self.closing = False

    async def created(self, approval: Approval) -> None:
        """A new approval: counted, recorded, announced to its groups' webhooks."""
        self._metrics.created.labels(approval.phase, approval.mode).inc()
        await self.audit("created", approval)
        if self._webhooks.enabled:
            payload: dict[str, Any] = {"event": "approval.created", "approval": approval.public()}
            if self._settings.public_url:
                payload["url"] = f"{self._settings.public_url.rstrip('/')}/admin/approvals/{approval.id}"
            self._webhooks.enqueue([*approval.groups, "*"], "approval.created", orjson.dumps(payload))
        self.refresh_pending()

    async def changed(self, old: Approval, new: Approval, *, audited: bool = False) -> None:
        """A change was stored: outcome metrics, and the audit record unless already written."""
        if new.status is not old.status:
            self._metrics.outcomes.labels(new.status.value).inc()
            if new.decided_at is not None:
                self._metrics.time_to_decision.labels(new.status.value).observe(
                    max(0.0, new.decided_at - new.created_at)
                )
            self.refresh_pending()
        if not audited:
            await self.audit(event_of(old, new), new)

    async def audit(self, event: str | None, approval: Approval, *, strict: bool = False) -> None:
        """``audit.record("approval", {...record, "event": created|vote|approved|denied|expired|cancelled|used|joined|
        superseded, "reviewer"})``: one event kind, so audit queries by kind find every approval change.

        ``strict`` (a reviewer's decision): a refused record raises ``AuditUnavailable``;
        otherwise the queue keeps working when the audit store does not."""
        audit = self._recorder() if self._recorder is not None else None
        record = getattr(audit, "record", None)
        if record is None or event is None:
            return
        payload = {**approval.public(), "event": event, "reviewer": approval.decided_by}
        try:
            result = record("approval", payload)
            if inspect.isawaitable(result):
                await result
        except Exception as exc:
            if strict:
                if isinstance(exc, AuditUnavailable):
                    raise
                raise AuditUnavailable(
                    f"The audit log could not record this decision: {type(exc).__name__}"
                ) from exc
            log.exception("could not write approval %s (%s) to the audit store", approval.id, event)

    async def apply(self, approval_id: str, change: Change) -> tuple[Approval, bool]:
        """Apply ``change`` in the store; run the side effects if it changed anything.
        Returns ``(record, changed)``."""
        before: list[Approval] = []

        def tracked(current: Approval) -> Approval | None:
            before[:] = [current]
            return change(current)

        after = await self._store.update(approval_id, tracked)
        changed = bool(before) and after is not before[0]
        if changed:
            await self.changed(before[0], after)
        return after, changed

    # -- the pending gauge -------------------------------------------------------------
    def refresh_pending(self) -> None:
        """Refresh the gauge off the caller's path: one refresh in flight, re-run if asked meanwhile."""
        self._gauge_dirty = True
        if self.closing:
            return
        if self._gauge_task is None or self._gauge_task.done():
            self._gauge_task = asyncio.create_task(self._refresh_while_dirty())

    async def _refresh_while_dirty(self) -> None:
        while self._gauge_dirty:
            self._gauge_dirty = False
            await self.count_pending()

    async def flush(self) -> None:
        """Wait for the pending gauge to catch up (tests, shutdown)."""
        if self._gauge_task is not None:
            await asyncio.gather(self._gauge_task, return_exceptions=True)

    async def count_pending(self) -> None:
        try:
            self._metrics.pending.set(await self._store.count_pending())
        except Exception as exc:  # a metric must never fail anything
            log.warning("could not refresh the pending-approvals gauge: %s", exc)
