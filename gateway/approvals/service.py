"""``ApprovalService``: the one object stages, the admin API and the CLI talk to.

It puts the store, the answer sealer, the waiters and the side effects together, so every
state change has the same effects whoever causes it (``effects.py``: the audit record in
the ``AuditRecorder`` it is given when the audit log is on, the metrics, on creation the
webhooks). Side effects run on the replica that made the change;
wake-ups, the admin SSE stream (``feed.py``) and the joinable view (``open_index.py``) are
driven by the store's change feed, which every replica hears.

Joining: a request identical to one already waiting for a reviewer joins that approval
(``joinable``) instead of calling the model again; ``open_index.py`` says why that costs no
store call on the hot path. The store's atomic create-or-join is the backstop when two
identical requests race.

Built by the approvals component (``Approvals.service``).
"""

from __future__ import annotations

import asyncio
import builtins
import time
from typing import Any

from gateway.approvals import rules
from gateway.approvals.config import ApprovalSettings
from gateway.approvals.crypto import AnswerSealer
from gateway.approvals.effects import Effects, event_of
from gateway.approvals.feed import Feed, Subscribers
from gateway.approvals.fingerprint import field_digests
from gateway.approvals.metrics import ApprovalMetrics
from gateway.approvals.model import Approval, Clock, Status, new_id
from gateway.approvals.open_index import OpenIndex
from gateway.approvals.sealed import SealedContents
from gateway.approvals.spec import ApprovalSpec
from gateway.approvals.store import ApprovalStore, Change, ListQuery, Page
from gateway.approvals.sweep import Sweeper
from gateway.approvals.tasks import raise_if_cancelling, stop
from gateway.approvals.waiters import Waiters
from gateway.approvals.webhooks import WebhookSender
from gateway.call import Call
from gateway.errors import Conflict, GatewayError, NotFound
from gateway.keys.store import AdminPrincipal
from gateway.recorder import RecorderProvider


class ApprovalService:
    def __init__(
        self,
        settings: ApprovalSettings,
        store: ApprovalStore,
        sealer: AnswerSealer,
        metrics: ApprovalMetrics,
        webhooks: WebhookSender,
        audit: RecorderProvider | None = None,
        *,
        clock: Clock = time.time,
    ) -> None:
        """``audit()`` is the audit log to record into (``None``: off), looked up per record.
        ``clock``: seconds since the epoch; every TTL and expiry is read from it (tests pass
        one they advance instead of sleeping). Holds still wait on the event loop's time."""
        self.settings = settings
        self.now = clock
        self.store = store
        self.metrics = metrics
        self.webhooks = webhooks
        self.waiters = Waiters()
        self._sealed = SealedContents(store, sealer)
        self._effects = Effects(settings, store, metrics, webhooks, audit)
        self._subscribers = Subscribers()
        self._sweeper = Sweeper(settings, store, self._effects, clock)
        self._closing = False
        #: The pending approvals by key and ask, fed by the change feed (what a request may join).
        self._open = OpenIndex()
        self._resync_task: asyncio.Task[None] | None = None
        #: Why the joinable view is not loaded (the store was down at start); None once it is.
        self.open_error: str | None = "open approvals not loaded yet"
        #: The worker is draining (SIGTERM): holds return the approval still pending at once.
        self.holds_released = False
        store.add_listener(self._on_change)

    # -- lifecycle -------------------------------------------------------------------
    async def start(self, *, sweep: bool = True) -> None:
        """A store that is down fails nothing here: not ready until the view loads (``ready``)."""
        await self.store.start()
        self._resync_task = asyncio.create_task(self._load_open(), name="approvals-open-load")
        await asyncio.wait({self._resync_task}, timeout=1.0)  # a healthy store: ready at once
        await self.webhooks.start()
        if sweep:
            self._sweeper.start()

    async def close(self) -> None:
        self._closing = self._effects.closing = True
        await self._sweeper.stop()
        await stop(self._resync_task)
        self._subscribers.end_all()
        self.waiters.wake_all()
        await self.flush_metrics()
        await self.webhooks.close()
        await self.store.close()

    async def _load_open(self) -> None:
        """Load the joinable view, retrying (0.1 s doubling to 2 s) until the store answers."""
        delay = 0.1
        while not self._closing:
            try:
                await self._open.load(self.store)
                self.open_error = None
                return
            except Exception as exc:  # store unreachable: stay not ready, try again
                self.open_error = f"open approvals not loaded: {str(exc) or type(exc).__name__}"
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def ready(self) -> None:
        """Readiness (``/readyz``): the store answers, its change feed is up, the view loaded."""
        await self.store.ping()
        problem = self.store.not_ready() or self.open_error
        if problem:
            raise ConnectionError(problem)

    # -- change feed -----------------------------------------------------------------
    def _on_change(self, kind: str, approval: Approval | None) -> None:
        if approval is None:  # resync: messages may have been lost
            self.waiters.wake_all()
            if not self._closing and (self._resync_task is None or self._resync_task.done()):
                self._resync_task = asyncio.create_task(self._load_open(), name="approvals-open-resync")
            return
        self._open.track(approval)
        self.waiters.notify(approval)
        self._subscribers.publish(kind, approval)

    def subscribe(self) -> Feed:
        """A queue of ``(kind, approval)`` for every change; ``None`` means the feed ended."""
        return self._subscribers.subscribe()

    def unsubscribe(self, queue: Feed) -> None:
        self._subscribers.unsubscribe(queue)

    # -- the joinable view ----------------------------------------------------------
    def may_have_open(self, key_id: str) -> bool:
        """Whether this key has a pending approval (in-process; no store call)."""
        return self._open.has(key_id)

    async def joinable(self, call: Call, fingerprint: str) -> Approval | None:
        """The pending approval an identical request (same key, fingerprint, agent and run) joins."""
        key_id = call.principal.key_id if call.principal else ""
        ask = (fingerprint, call.agent_id, call.run_id)
        approval_id = self._open.find(key_id, ask)
        if approval_id is None:
            return None
        approval = await self.store.get(approval_id)
        if approval is not None and approval.overdue(self.now()):
            approval = await self.expire(approval_id, rules.EXPIRED, only_if_due=True)
        if approval is None or approval.status is not Status.PENDING:
            self._open.forget(key_id, ask, approval_id)  # a stale entry
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
        now = self.now()
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
        sealed, sealed_values = self._sealed.seal(answer), self._sealed.seal(values)
        for _ in range(3):
            existing_id = await self.store.create(approval, sealed, sealed_values, join=join)
            if existing_id is None:
                break
            existing = await self.store.get(existing_id)
            if existing is not None and existing.overdue(self.now()):
                existing = await self.expire(existing_id, rules.EXPIRED, only_if_due=True)
            if existing is not None and existing.status is Status.PENDING:
                return existing, False
            # decided or gone in between: its index entry went with it, so try again
        else:
            raise Conflict("The approval is changing too fast; try again.", code="approval_contended")
        self._open.track(approval)  # this replica knows at once; the others when the change feed tells them
        await self._effects.created(approval)
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
        return await self._sealed.answer(approval)

    async def list(self, query: ListQuery) -> Page:
        return await self.store.list(query)

    async def pending(self, limit: int = 10_000) -> builtins.list[Approval]:
        """The pending approvals not yet overdue (at most ``limit``), newest first: read from the
        store's pending index, not by scanning every record (the console's inbox)."""
        now = self.now()
        records = [a for a in await self.store.pending(limit) if not a.overdue(now)]
        return sorted(records, key=lambda a: (a.created_at, a.id), reverse=True)

    # -- deciding --------------------------------------------------------------------
    async def approve(self, approval_id: str, reviewer: AdminPrincipal, comment: str | None) -> Approval:
        return _unless_expired(await self._decide(approval_id, rules.approve(reviewer, comment, self.now())))

    async def deny(self, approval_id: str, reviewer: AdminPrincipal, comment: str | None) -> Approval:
        return _unless_expired(await self._decide(approval_id, rules.deny(reviewer, comment, self.now())))

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
            event = event_of(current, proposed)
            await self._effects.audit(event, proposed, strict=True)

            def guarded(
                latest: Approval, proposed: Approval = proposed, event: str | None = event
            ) -> Approval | None:
                # The decision again on the record as it is now: a change that does not touch
                # it (a re-send joining, a use) keeps it; one that does makes it another decision.
                again = change(latest)
                if (
                    again is None
                    or event_of(latest, again) != event
                    or again.status is not proposed.status
                    or again.votes != proposed.votes
                ):
                    raise _Superseded
                return again

            try:
                after = await self.store.update(approval_id, guarded)
            except _Superseded:
                await self._effects.audit("superseded", proposed)
                continue
            except GatewayError:  # decided or expired meanwhile: the recorded decision did not take effect
                await self._effects.audit("superseded", proposed)
                raise
            await self._effects.changed(current, after, audited=True)
            return after
        raise Conflict("The approval is changing too fast; try again.", code="approval_contended")

    async def cancel(self, approval_id: str, key_id: str) -> Approval:
        return await self._change(approval_id, rules.cancel(key_id, self.now()))

    async def expire(
        self, approval_id: str, reason: str, *, only_if_due: bool = False, holder: str | None = None
    ) -> Approval:
        """Pending → expired; returns the record as it ends up (a reviewer may have won the race).
        ``holder``: a hold timing out, which leaves alone an approval another request took over."""
        return await self._change(
            approval_id, rules.expire(reason, self.now(), only_if_due=only_if_due, holder=holder)
        )

    async def consume(self, approval_id: str, claimant: str | None = None) -> Approval:
        """Release an approved answer, once (``claimant``: the holding request's id, if one)."""
        return await self._change(approval_id, rules.consume(claimant))

    async def claim(self, approval_id: str, request_id: str) -> Approval:
        """An identical re-send joins a pending approval: it becomes the request waiting on it."""
        return await self._change(approval_id, rules.claim(request_id))

    async def real_tool_calls(self, approval: Approval) -> builtins.list[dict[str, Any]] | None:
        """The tool calls with the caller's real values (only for the approval's reviewers)."""
        return await self._sealed.real_tool_calls(approval)

    async def _change(self, approval_id: str, change: Change) -> Approval:
        return (await self._effects.apply(approval_id, change))[0]

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
                    if current.overdue(self.now()):
                        current = await self.expire(approval_id, rules.EXPIRED, only_if_due=True)
                    if current.decided or _taken_over(current, holder) or self.holds_released:
                        return current
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        return current
                    until_expiry = max(0.01, current.expires_at - self.now() + 0.01)
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
        return await self._sweeper.once()

    async def flush_metrics(self) -> None:
        """Wait for the pending gauge to catch up (tests, shutdown)."""
        await self._effects.flush()


def _taken_over(approval: Approval, holder: str | None) -> bool:
    return holder is not None and approval.holder not in (None, holder)


class _Superseded(Exception):
    """The approval changed between a decision and its storing."""


def _unless_expired(approval: Approval) -> Approval:
    """A decision that found its approval overdue expired it instead: that is a 409 for the reviewer."""
    if approval.status is Status.EXPIRED:
        raise Conflict(f"Approval {approval.id} has expired.", code="approval_expired")
    return approval
