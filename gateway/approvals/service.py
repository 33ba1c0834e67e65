"""``ApprovalService``: the one object stages, the admin API and the CLI talk to.

It puts the store, the answer sealer, the waiters, webhooks, metrics and the audit log
together, so every state change has the same side effects whoever causes it: the audit
record (the ``AuditRecorder`` it is given, when the audit log is on),
the metrics, and on creation the webhooks. Side effects run on the replica that made the
change; wake-ups and the admin SSE stream are driven by the store's change feed, which
every replica hears.

Joining: every replica keeps, from the same feed, the set of pending approvals by key and
fingerprint (``_open``), so a request can tell in-process, without a store round trip on
the hot path, that an identical request already waits for a reviewer; it then joins that
approval (``joinable``) instead of calling the model again. The store's atomic
create-or-join is the backstop when two identical requests race.

Built by the approvals component (``Approvals.service``).
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import inspect
import logging
import time
from typing import Any

import orjson

from gateway.approvals import rules
from gateway.approvals.config import ApprovalSettings
from gateway.approvals.crypto import AnswerSealer, SealError
from gateway.approvals.fingerprint import field_digests
from gateway.approvals.metrics import ApprovalMetrics
from gateway.approvals.model import Approval, Status, new_id
from gateway.approvals.spec import ApprovalSpec
from gateway.approvals.store import ApprovalStore, Change, ListQuery, Page
from gateway.approvals.tasks import raise_if_cancelling, stop
from gateway.approvals.waiters import Waiters
from gateway.approvals.webhooks import WebhookSender
from gateway.call import Call
from gateway.errors import AuditUnavailable, Conflict, GatewayError, NotFound
from gateway.keys.store import AdminPrincipal
from gateway.recorder import RecorderProvider

log = logging.getLogger("wardgate.approvals")

_SUBSCRIBER_QUEUE = 1000


class ApprovalService:
    def __init__(
        self,
        settings: ApprovalSettings,
        store: ApprovalStore,
        sealer: AnswerSealer,
        metrics: ApprovalMetrics,
        webhooks: WebhookSender,
        audit: RecorderProvider | None = None,
    ) -> None:
        """``audit()`` is the audit log to record into (``None``: off), looked up per record."""
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.webhooks = webhooks
        self.waiters = Waiters()
        self._sealer = sealer
        self._recorder = audit
        self._subscribers: set[asyncio.Queue[tuple[str, Approval] | None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._gauge_task: asyncio.Task[None] | None = None
        self._gauge_dirty = False
        self._closing = False
        #: key_id → {(fingerprint, agent, run): approval id} of pending approvals, fed by the change feed.
        self._open: dict[str, dict[tuple[str, str | None, str | None], str]] = {}
        self._resync_task: asyncio.Task[None] | None = None
        #: The worker is draining (SIGTERM): holds return the approval still pending at once.
        self.holds_released = False
        store.add_listener(self._on_change)

    # -- lifecycle -------------------------------------------------------------------
    async def start(self, *, sweep: bool = True) -> None:
        await self.store.start()
        await self._load_open()
        await self.webhooks.start()
        if sweep:
            self._sweeper = asyncio.create_task(self._sweep_forever(), name="approvals-sweeper")

    async def close(self) -> None:
        self._closing = True
        await stop(self._sweeper)
        await stop(self._resync_task)
        for queue in list(self._subscribers):
            _offer(queue, None)
        self.waiters.wake_all()
        await self.flush_metrics()
        await self.webhooks.close()
        await self.store.close()

    # -- change feed -----------------------------------------------------------------
    def _on_change(self, kind: str, approval: Approval | None) -> None:
        if approval is None:  # resync: messages may have been lost
            self.waiters.wake_all()
            if not self._closing and (self._resync_task is None or self._resync_task.done()):
                self._resync_task = asyncio.create_task(self._load_open(), name="approvals-open-resync")
            return
        self._track(approval)
        self.waiters.notify(approval)
        for queue in list(self._subscribers):
            if not _offer(queue, (kind, approval)):
                self._subscribers.discard(queue)
                _offer_end(queue)

    def subscribe(self) -> asyncio.Queue[tuple[str, Approval] | None]:
        """A queue of ``(kind, approval)`` for every change; ``None`` means the feed ended."""
        queue: asyncio.Queue[tuple[str, Approval] | None] = asyncio.Queue(maxsize=_SUBSCRIBER_QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[tuple[str, Approval] | None]) -> None:
        self._subscribers.discard(queue)

    # -- the joinable view ----------------------------------------------------------
    def _track(self, approval: Approval) -> None:
        key_id = str(approval.principal.get("key_id") or "")
        ask = (approval.fingerprint, approval.agent_id, approval.run_id)
        if approval.status is Status.PENDING:
            self._open.setdefault(key_id, {})[ask] = approval.id
            return
        asks = self._open.get(key_id)
        if asks is not None and asks.get(ask) == approval.id:
            del asks[ask]
            if not asks:
                del self._open[key_id]

    async def _load_open(self) -> None:
        try:
            pending = await self.store.pending()
        except Exception as exc:  # the store's own calls will fail (and answer) if it is really down
            log.warning("approvals: could not load the pending approvals to join: %s", exc)
            return
        self._open = {}
        for approval in pending:
            self._track(approval)

    def may_have_open(self, key_id: str) -> bool:
        """Whether this key has a pending approval (in-process; no store call)."""
        return key_id in self._open

    async def joinable(self, call: Call, fingerprint: str) -> Approval | None:
        """The pending approval an identical request (same key, fingerprint, agent and run) joins."""
        key_id = call.principal.key_id if call.principal else ""
        approval_id = self._open.get(key_id, {}).get((fingerprint, call.agent_id, call.run_id))
        if approval_id is None:
            return None
        approval = await self.store.get(approval_id)
        if approval is not None and approval.overdue():
            approval = await self.expire(approval_id, rules.EXPIRED, only_if_due=True)
        if approval is None or approval.status is not Status.PENDING:
            asks = self._open.get(key_id, {})
            if asks.get((fingerprint, call.agent_id, call.run_id)) == approval_id:  # a stale entry
                del asks[(fingerprint, call.agent_id, call.run_id)]
            return None
        return approval

    # -- creating --------------------------------------------------------------------
    async def create(
        self,
        call: Call,
        phase: str,
        spec: ApprovalSpec,
        fingerprint: str,
        answer: dict[str, Any] | None = None,
        *,
        values: list[dict[str, Any]] | None = None,
        holder: str | None = None,
    ) -> Approval:
        """A new pending approval (never joins one)."""
        approval, _ = await self.create_or_join(
            call, phase, spec, fingerprint, answer, values=values, holder=holder, join=False
        )
        return approval

    async def create_or_join(
        self,
        call: Call,
        phase: str,
        spec: ApprovalSpec,
        fingerprint: str,
        answer: dict[str, Any] | None = None,
        *,
        values: list[dict[str, Any]] | None = None,
        holder: str | None = None,
        join: bool = True,
    ) -> tuple[Approval, bool]:
        """A new pending approval, or (``join``) the pending one an identical request made:
        ``(approval, created)``. ``values``: the tool calls with the caller's real values,
        sealed beside the record (its ``tool_calls`` carry placeholders)."""
        now = time.time()
        p = call.principal
        approval = Approval(
            id=new_id(),
            status=Status.PENDING,
            phase=phase,
            mode=spec.mode,
            created_at=now,
            expires_at=now + spec.ttl_s,
            principal={"key_id": p.key_id, "team": p.team, "user": p.user} if p else {},
            endpoint=call.endpoint.value,
            model=call.model,
            fingerprint=fingerprint,
            agent_id=call.agent_id,
            run_id=call.run_id,
            request_id=call.request_id,
            reasons=list(spec.reasons),
            tool_calls=spec.tool_calls,
            groups=list(spec.groups),
            approvals_required=spec.approvals_required,
            has_answer=answer is not None,
            holder=holder,
            hold_s=spec.hold_s,
            has_values=values is not None,
            fields=field_digests(call.endpoint.value, call.model, call.body),
        )
        sealed = self._sealer.seal(orjson.dumps(answer)) if answer is not None else None
        sealed_values = self._sealer.seal(orjson.dumps(values)) if values is not None else None
        for _ in range(3):
            existing_id = await self.store.create(approval, sealed, sealed_values, join=join)
            if existing_id is None:
                break
            existing = await self.store.get(existing_id)
            if existing is not None and existing.overdue():
                existing = await self.expire(existing_id, rules.EXPIRED, only_if_due=True)
            if existing is not None and existing.status is Status.PENDING:
                return existing, False
            # decided or gone in between: its index entry went with it, so try again
        else:
            raise Conflict("The approval is changing too fast; try again.", code="approval_contended")
        self._track(approval)  # this replica knows at once; the others when the change feed tells them
        self.metrics.created.labels(phase, spec.mode).inc()
        await self._audit("created", approval)
        if self.webhooks.enabled:
            payload = {"event": "approval.created", "approval": approval.public()}
            if self.settings.public_url:
                payload["url"] = f"{self.settings.public_url.rstrip('/')}/admin/approvals/{approval.id}"
            self.webhooks.enqueue([*approval.groups, "*"], "approval.created", orjson.dumps(payload))
        self._refresh_pending()
        return approval, True

    # -- reading ---------------------------------------------------------------------
    async def get(self, approval_id: str) -> Approval | None:
        return await self.store.get(approval_id)

    async def require(self, approval_id: str) -> Approval:
        approval = await self.store.get(approval_id)
        if approval is None:
            raise NotFound(f"No approval with id '{approval_id}'.", code="approval_not_found")
        return approval

    async def answer(self, approval: Approval) -> dict[str, Any] | None:
        """The held answer, opened. Callers must have checked it is the original caller asking."""
        sealed = await self.store.get_answer(approval.id) if approval.has_answer else None
        if sealed is None:
            return None
        try:
            return orjson.loads(self._sealer.open(sealed))
        except SealError:
            log.error(
                "approval %s: the held answer cannot be opened (answer key differs between replicas?)",
                approval.id,
            )
            raise

    async def list(self, query: ListQuery) -> Page:
        return await self.store.list(query)

    # -- deciding --------------------------------------------------------------------
    async def approve(self, approval_id: str, reviewer: AdminPrincipal, comment: str | None) -> Approval:
        return _unless_expired(await self._decide(approval_id, rules.approve(reviewer, comment, time.time())))

    async def deny(self, approval_id: str, reviewer: AdminPrincipal, comment: str | None) -> Approval:
        return _unless_expired(await self._decide(approval_id, rules.deny(reviewer, comment, time.time())))

    async def _decide(self, approval_id: str, change: Change) -> Approval:
        """A reviewer's decision, recorded in the audit log *before* it is stored: the held call
        acts on it the moment it is stored, so it could not be taken back. A decision the audit
        log refuses is never stored (``AuditUnavailable``, 503). If the record changed between
        the decision and its storing (another reviewer, the expiry), the decision is made again
        on the new record, and the one recorded is marked superseded."""
        for _ in range(5):
            current = await self.require(approval_id)
            proposed = change(current)
            if proposed is None or proposed == current:
                return current
            event = _event(current, proposed)
            await self._audit(event, proposed, strict=True)

            def guarded(
                latest: Approval, proposed: Approval = proposed, event: str | None = event
            ) -> Approval | None:
                # The decision again on the record as it is now: a change that does not touch
                # it (a re-send joining, a use) keeps it; one that does makes it another decision.
                again = change(latest)
                if (
                    again is None
                    or _event(latest, again) != event
                    or again.status is not proposed.status
                    or again.votes != proposed.votes
                ):
                    raise _Superseded
                return again

            try:
                after = await self.store.update(approval_id, guarded)
            except _Superseded:
                await self._audit("superseded", proposed)
                continue
            except GatewayError:  # decided or expired meanwhile: the recorded decision did not take effect
                await self._audit("superseded", proposed)
                raise
            await self._after_change(current, after, audited=True)
            return after
        raise Conflict("The approval is changing too fast; try again.", code="approval_contended")

    async def cancel(self, approval_id: str, key_id: str) -> Approval:
        return await self._change(approval_id, rules.cancel(key_id, time.time()))

    async def expire(
        self, approval_id: str, reason: str, *, only_if_due: bool = False, holder: str | None = None
    ) -> Approval:
        """Pending → expired; returns the record as it ends up (a reviewer may have won the race).
        ``holder``: a hold timing out, which leaves alone an approval another request took over."""
        return await self._change(
            approval_id, rules.expire(reason, time.time(), only_if_due=only_if_due, holder=holder)
        )

    async def consume(self, approval_id: str, claimant: str | None = None) -> Approval:
        """Release an approved answer, once (``claimant``: the holding request's id, if one)."""
        return await self._change(approval_id, rules.consume(claimant))

    async def claim(self, approval_id: str, request_id: str) -> Approval:
        """An identical re-send joins a pending approval: it becomes the request waiting on it."""
        return await self._change(approval_id, rules.claim(request_id))

    async def real_tool_calls(self, approval: Approval) -> builtins.list[dict[str, Any]] | None:
        """The tool calls with the caller's real values, opened. Only for the approval's reviewers;
        never logged, never in an audit event or a metric."""
        if not approval.has_values:
            return None
        sealed = await self.store.get_values(approval.id)
        if sealed is None:
            return None
        try:
            values = orjson.loads(self._sealer.open(sealed))
        except SealError:
            log.error(
                "approval %s: the real argument values cannot be opened (answer key differs between "
                "replicas?)",
                approval.id,
            )
            return None
        return values if isinstance(values, list) else None

    async def _change(self, approval_id: str, change: Change) -> Approval:
        return (await self._change_tracked(approval_id, change))[0]

    async def _change_tracked(self, approval_id: str, change: Change) -> tuple[Approval, bool]:
        """Apply ``change``; run the side effects if it changed anything. Returns (record, changed)."""
        before: builtins.list[Approval] = []

        def tracked(current: Approval) -> Approval | None:
            before[:] = [current]
            return change(current)

        after = await self.store.update(approval_id, tracked)
        changed = bool(before) and after is not before[0]
        if changed:
            await self._after_change(before[0], after)
        return after, changed

    async def _after_change(self, old: Approval, new: Approval, *, audited: bool = False) -> None:
        if new.status is not old.status:
            self.metrics.outcomes.labels(new.status.value).inc()
            if new.decided_at is not None:
                self.metrics.time_to_decision.labels(new.status.value).observe(
                    max(0.0, new.decided_at - new.created_at)
                )
            self._refresh_pending()
        if not audited:
            await self._audit(_event(old, new), new)

    # -- waiting ---------------------------------------------------------------------
    def release_holds(self) -> None:
        """The worker is draining: every hold (and any that starts from now) returns its
        approval as it stands, pending; nothing is expired or decided. The caller answers
        409 ``approval_pending`` with the id, and the re-send goes to any replica."""
        self.holds_released = True
        self.waiters.wake_all()

    async def wait(self, approval_id: str, hold_s: float, holder: str | None = None) -> Approval:
        """Until the approval is decided or ``hold_s`` passes (or the drain released the
        holds); returns the latest record.

        ``holder``: the waiting request's id; the wait also ends when an identical request
        joined the approval and took it over (``approval.holder`` is then someone else).
        A cancelled wait (the client went away) changes nothing: the approval stays pending.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold_s
        self.metrics.held.inc()
        try:
            while True:
                future = self.waiters.register(approval_id)
                try:
                    current = await self.require(approval_id)
                    raise_if_cancelling()
                    if current.overdue():
                        current = await self.expire(approval_id, rules.EXPIRED, only_if_due=True)
                    if current.decided or _taken_over(current, holder) or self.holds_released:
                        return current
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        return current
                    until_expiry = max(0.01, current.expires_at - time.time() + 0.01)
                    woken = await self.waiters.wait(
                        future, min(remaining, self.settings.recheck_s, until_expiry)
                    )
                    if woken is not None and (woken.decided or _taken_over(woken, holder)):
                        return woken
                finally:
                    self.waiters.discard(approval_id, future)
        finally:
            self.metrics.held.dec()

    # -- expiry sweep ----------------------------------------------------------------
    async def sweep_once(self) -> int:
        """Expire what is overdue; runs on one replica per interval (the others skip)."""
        interval = self.settings.sweep_interval_s
        if not await self.store.try_lock("sweep", max(0.05, interval * 0.9)):
            return 0
        now = time.time()
        expired = 0
        for approval_id in await self.store.due(now):
            try:
                _, changed = await self._change_tracked(
                    approval_id, rules.expire(rules.EXPIRED, now, only_if_due=True)
                )
            except NotFound:
                continue
            expired += changed
        await self.store.purge(now - self.settings.retention_s)
        return expired

    async def _sweep_forever(self) -> None:
        while not self._closing:
            try:
                await self.sweep_once()
                await self._count_pending()
            except Exception:  # the sweep must outlive a Redis hiccup
                log.exception("approvals expiry sweep failed; retrying next interval")
            await asyncio.sleep(self.settings.sweep_interval_s)

    # -- side effects ----------------------------------------------------------------
    def _refresh_pending(self) -> None:
        """Refresh the gauge off the caller's path: one refresh in flight, re-run if asked meanwhile."""
        self._gauge_dirty = True
        if self._closing:
            return
        if self._gauge_task is None or self._gauge_task.done():
            self._gauge_task = asyncio.create_task(self._refresh_while_dirty())

    async def _refresh_while_dirty(self) -> None:
        while self._gauge_dirty:
            self._gauge_dirty = False
            await self._count_pending()

    async def flush_metrics(self) -> None:
        """Wait for the pending gauge to catch up (tests, shutdown)."""
        if self._gauge_task is not None:
            await asyncio.gather(self._gauge_task, return_exceptions=True)

    async def _count_pending(self) -> None:
        try:
            self.metrics.pending.set(await self.store.count_pending())
        except Exception as exc:  # a metric must never fail anything
            log.warning("could not refresh the pending-approvals gauge: %s", exc)

    async def _audit(self, event: str | None, approval: Approval, *, strict: bool = False) -> None:
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


def _taken_over(approval: Approval, holder: str | None) -> bool:
    return holder is not None and approval.holder not in (None, holder)


class _Superseded(Exception):
    """The approval changed between a decision and its storing."""


def _event(old: Approval, new: Approval) -> str | None:
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


def _unless_expired(approval: Approval) -> Approval:
    """A decision that found its approval overdue expired it instead: that is a 409 for the reviewer."""
    if approval.status is Status.EXPIRED:
        raise Conflict(f"Approval {approval.id} has expired.", code="approval_expired")
    return approval


def _offer(queue: asyncio.Queue[Any], item: Any) -> bool:
    try:
        queue.put_nowait(item)
        return True
    except asyncio.QueueFull:
        return False


def _offer_end(queue: asyncio.Queue[Any]) -> None:
    """Tell a subscriber that fell behind that its feed ended (make room for the marker)."""
    with contextlib.suppress(asyncio.QueueEmpty):
        queue.get_nowait()
    _offer(queue, None)
