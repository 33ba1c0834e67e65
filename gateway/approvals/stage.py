"""The two approval stages: ``approval_request`` (before forwarding) and ``approval_response``.

What they read. The policy stage of each phase sets, when its decision has ``require_approval``::

    call.approval_ask = ApprovalAsk(
        phase="request" | "response",
        "items": [{"reason": str,                     # shown to the reviewer
                   "tool_call_id": str?,              # only this call (else the whole answer)
                   "approvers": str | [str]?,         # approver group(s)
                   "ttl_s": float?, "hold_s": float?, # expiry, how long a hold waits
                   "mode": "hold" | "defer"?,
                   "approvals_required": int?}],
        decision={...},                               # the policy decision, for context
    )

What they write: ``call.approval`` (the approval's id, status, mode, reviewer... and the ask
it answers), a ``Decision`` per approval, the headers ``x-wardgate-approval-id`` and
``x-wardgate-approval`` (approved | denied | pending), and ``call.replayed = True`` when the
answer did not come from the model in this call (a stored or synthesized answer): stages that
check or charge what the model said skip it.

Re-sends: a request with ``X-Wardgate-Approval-Id`` is matched to its approval (same key,
same fingerprint, else 403 naming the fields that differ; only ``stream`` and
``stream_options`` may) before anything else: pending → 409 again; approved response phase →
the stored answer, so the model is not called again; approved request phase → the request
goes on; denied/expired → the rewritten denial answer. An approved answer is released once,
whichever phase and whoever asks (the request that held it, a re-send): then 409
``approval_used``.

Joining: a request without the header that is identical (same key, same fingerprint, same
agent and run headers) to one whose approval is still pending joins that approval instead of asking the model and a
reviewer again (an SDK retrying a held call that timed out on its side). In ``hold`` mode it
takes the approval over and holds in its turn (the earlier request, whose client has gone,
stops waiting: 409 ``approval_superseded``), and gets the outcome when the reviewer decides;
in ``defer`` mode it gets the same 409 ``approval_pending``.

Streams: ``approval_response`` holds tool-call and final events until the stream ends (and
leading events until the first text), then decides; text flows at once. It runs after
``policy_response`` in the chunk chain, so whatever that stage holds back and releases at
the end reaches this one before its own ``on_stream_end`` decides.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from gateway.approvals import rules
from gateway.approvals.answers import deny_json, pending_text, tool_calls_of
from gateway.approvals.crypto import SealError
from gateway.approvals.fingerprint import STREAM_FLAGS, changed_fields, fingerprint
from gateway.approvals.model import Approval, Status, valid_id
from gateway.approvals.replay import (
    approved_response,
    denied_response,
    outcome_text,
    stored_events,
    stored_json,
    wants_usage,
)
from gateway.approvals.reveal import conceal
from gateway.approvals.service import ApprovalService
from gateway.approvals.spec import ApprovalSpec, resolve
from gateway.approvals.stream_answers import LEAD, TEXT, assemble, classify, deny_events
from gateway.approvals.waiters import while_connected
from gateway.call import Call, Decision, Endpoint, ModelResponse
from gateway.callstate import ApprovalAsk, ApprovalOutcome, Slot
from gateway.errors import (
    ApprovalMismatch,
    ApprovalPending,
    BadRequest,
    Conflict,
    Denied,
    InternalError,
    NotFound,
    ServiceUnavailable,
)
from gateway.pipeline import Stage
from gateway.sse import SSEEvent

HEADER = "x-wardgate-approval-id"
OUTCOME_HEADER = "x-wardgate-approval"


def _wanted(call: Call, phase: str) -> ApprovalAsk | None:
    """The policy's ask for ``phase``, unless this call has already answered it."""
    ask = call.approval_ask
    if ask is None or ask.phase != phase:
        return None
    done = call.approval
    if done is not None and done.ask is ask:
        return None
    return ask


def _pending(approval: Approval) -> ApprovalPending:
    return ApprovalPending(
        f"Approval {approval.id} is waiting for a reviewer. Re-send the same request with the header "
        f"X-Wardgate-Approval-Id: {approval.id} to get the outcome.",
        headers={HEADER: approval.id},
        extra={"approval_id": approval.id, "approval_status": approval.status.value},
    )


def _mismatch(call: Call, approval: Approval) -> ApprovalMismatch:
    changed = changed_fields(call, approval.fields) if approval.fields else []
    shown = [name[:64] for name in changed[:10]]
    what = f" (changed: {', '.join(shown)}{', ...' if len(changed) > 10 else ''})" if shown else ""
    return ApprovalMismatch(
        f"This request differs from the one approval {approval.id} was made for{what}; re-send it unchanged "
        f"(only {' and '.join(sorted(STREAM_FLAGS))} may differ).",
        param=shown[0] if len(shown) == 1 else None,
    )


class _ApprovalStage(Stage):
    def __init__(self, service: ApprovalService) -> None:
        self.service = service

    def _note(self, call: Call, approval: Approval, ask: ApprovalAsk | None) -> None:
        outcome = {Status.APPROVED: "approved", Status.PENDING: "pending"}.get(approval.status, "denied")
        call.response_headers[HEADER] = approval.id
        call.response_headers[OUTCOME_HEADER] = outcome
        # ``ask`` None: a re-send; the approval it redeems is recorded for the audit event
        call.approval = ApprovalOutcome(
            ask,
            {
                "id": approval.id,
                "status": approval.status.value,
                "mode": approval.mode,
                "phase": approval.phase,
                "reviewer": approval.decided_by,
                "comment": approval.comment,
                "created_at": approval.created_at,
                "expires_at": approval.expires_at,
                "decided_at": approval.decided_at,
            },
        )
        reasons = list(approval.reasons) if outcome != "denied" else [outcome_text(approval)]
        call.decisions.append(
            Decision(
                stage=self.name,
                phase=approval.phase,
                outcome={"approved": "allow", "pending": "approval"}.get(outcome, "deny"),
                reasons=reasons,
                detail={"approval_id": approval.id, "status": approval.status.value, "mode": approval.mode},
            )
        )

    async def _hold(self, call: Call, approval: Approval, hold_s: float) -> Approval:
        """Wait for the decision as the approval's holder; on timeout apply the configured
        outcome (a reviewer may still win). Raises 409 ``approval_superseded`` when an identical
        re-send took the approval over meanwhile. A hold released by the drain (SIGTERM) is no
        timeout: the approval stays pending, as in defer mode."""
        me = call.request_id
        final = await while_connected(call, self.service.wait(approval.id, hold_s, holder=me))
        if final.status is Status.PENDING and final.holder not in (None, me):
            call.response_headers[HEADER] = approval.id
            raise rules.superseded(final)
        if (
            final.status is Status.PENDING
            and self.service.settings.timeout_outcome == "deny"
            and not self.service.holds_released
        ):
            final = await self.service.expire(approval.id, rules.TIMED_OUT, holder=me)
        return final

    async def _redeem(self, call: Call, approval: Approval, claimant: str | None) -> Approval:
        """An approved answer, released once (raises 409 ``approval_used`` / ``approval_superseded``)."""
        if approval.status is not Status.APPROVED:
            return approval
        call.response_headers[HEADER] = approval.id
        return await self.service.consume(approval.id, claimant)


class ApprovalRequestStage(_ApprovalStage):
    name: ClassVar[str] = "approval_request"

    async def on_request(self, call: Call) -> None:
        approval_id = call.headers.get(HEADER)
        if approval_id is not None:
            await self._resend(call, approval_id.strip())
            return
        principal = call.principal
        if principal is not None and self.service.may_have_open(principal.key_id):
            joined = await self.service.joinable(call, fingerprint(call))
            if joined is not None:
                await self._join(call, joined)
                return
        ask = _wanted(call, "request")
        if ask is None:
            return
        spec = resolve(self.service.settings, ask, [])
        holder = call.request_id if spec.mode == "hold" else None
        approval, created = await self.service.create_or_join(
            call, "request", spec, fingerprint(call), None, holder=holder
        )
        if not created:
            await self._join(call, approval)
            return
        if spec.mode == "defer":
            self._note(call, approval, ask)
            raise _pending(approval)
        final = await self._hold(call, approval, spec.hold_s)
        await self._conclude_request(call, final, ask, call.request_id)

    async def _join(self, call: Call, approval: Approval) -> None:
        """An identical request is already waiting for this approval: wait with it, not again."""
        self.service.metrics.joined.inc()
        claimant = None
        if approval.mode == "hold":
            approval = await self.service.claim(approval.id, call.request_id)
            if approval.status is Status.PENDING:
                claimant = call.request_id
                approval = await self._hold(call, approval, approval.hold_s or self.service.settings.hold_s)
        await self._conclude(call, approval, claimant)

    async def _conclude_request(
        self, call: Call, approval: Approval, ask: ApprovalAsk | None, claimant: str | None
    ) -> None:
        approval = await self._redeem(call, approval, claimant)
        self._note(call, approval, ask)
        if approval.status is Status.PENDING:
            raise _pending(approval)
        if approval.status is not Status.APPROVED:
            if call.endpoint is Endpoint.EMBEDDINGS:  # no assistant message to put the denial in
                raise Denied([outcome_text(approval)], extra={"approval_id": approval.id})
            call.response = denied_response(call, approval, None)
            call.replayed = True

    async def _resend(self, call: Call, approval_id: str) -> None:
        if not valid_id(approval_id):
            raise BadRequest("X-Wardgate-Approval-Id must be an approval id (apr_...).", param=HEADER)
        approval = await self.service.get(approval_id)
        if approval is None:
            raise NotFound(f"No approval with id '{approval_id}'.", code="approval_not_found")
        if call.principal is None or approval.principal.get("key_id") != call.principal.key_id:
            raise ApprovalMismatch(f"Approval {approval_id} was not made for this API key.")
        if fingerprint(call) != approval.fingerprint:
            raise _mismatch(call, approval)
        if approval.overdue(self.service.now()):
            approval = await self.service.expire(approval_id, rules.EXPIRED, only_if_due=True)
        await self._conclude(call, approval, None)

    async def _conclude(self, call: Call, approval: Approval, claimant: str | None) -> None:
        """The outcome of an approval this request did not create (a re-send, or a join)."""
        if approval.phase == "request":
            ask = call.approval_ask
            await self._conclude_request(
                call, approval, ask if ask is not None and ask.phase == "request" else None, claimant
            )
            return
        if approval.status is Status.PENDING:
            self._note(call, approval, None)
            raise _pending(approval)
        try:
            stored = await self.service.answer(approval)
        except SealError as exc:
            raise ServiceUnavailable(
                f"The answer held by approval {approval.id} cannot be opened here: the "
                "replicas do not share the approvals answer key.",
                code="approval_answer_unavailable",
            ) from exc
        if approval.status is Status.APPROVED and stored is None:
            raise InternalError(f"Approval {approval.id} has no stored answer to release.")
        approval = await self._redeem(call, approval, claimant)
        self._note(call, approval, None)
        if approval.status is Status.APPROVED and stored is not None:
            call.response = approved_response(call, stored)
        else:
            call.response = denied_response(call, approval, stored)
        call.client_wants_usage = wants_usage(call)
        call.replayed = True


class _StreamHold:
    """Per-stream bookkeeping of ``approval_response``."""

    __slots__ = ("held", "next_seq", "released", "seen", "text_started")

    def __init__(self) -> None:
        self.seen: list[SSEEvent] = []
        self.held: list[tuple[str, SSEEvent]] = []
        self.text_started = False
        self.released = 0
        self.next_seq: int | None = None

    def release(self, events: list[SSEEvent], endpoint: str) -> list[SSEEvent]:
        self.released += len(events)
        if endpoint == "responses":
            for e in events:
                seq = e.json.get("sequence_number") if isinstance(e.json, dict) else None
                if isinstance(seq, int):
                    self.next_seq = max(self.next_seq or 0, seq + 1)
        return events


#: ``approval_response``'s hold on the call's stream.
_HOLD: Slot[_StreamHold] = Slot("approvals.stream_hold")


class ApprovalResponseStage(_ApprovalStage):
    name: ClassVar[str] = "approval_response"
    reads_stream = True

    async def _create(
        self, call: Call, ask: ApprovalAsk, tool_calls: list[dict[str, Any]], answer: dict[str, Any]
    ) -> tuple[Approval, ApprovalSpec]:
        spec = resolve(self.service.settings, ask, tool_calls)
        spec, values = conceal(call, spec)
        holder = call.request_id if spec.mode == "hold" else None
        # Never joins: the model has answered this call already; an identical request that
        # raced it (both reached the model) gets its own approval for its own answer.
        approval = await self.service.create(
            call, "response", spec, fingerprint(call), answer, values=values, holder=holder
        )
        return approval, spec

    async def _decide(self, call: Call, approval: Approval, spec: ApprovalSpec) -> Approval:
        if spec.mode == "defer":
            return approval
        final = await self._hold(call, approval, spec.hold_s)
        return await self._redeem(call, final, call.request_id)

    async def on_response(self, call: Call, response: ModelResponse) -> None:
        ask = _wanted(call, "response")
        if ask is None or call.replayed:
            return
        endpoint = call.endpoint.value
        if response.json is None and response.body:
            response.json = orjson.loads(response.body)
        approval, spec = await self._create(
            call, ask, tool_calls_of(endpoint, response.json), stored_json(response.json)
        )
        final = await self._decide(call, approval, spec)
        self._note(call, final, ask)
        if final.status is Status.PENDING:
            raise _pending(final)
        if final.status is not Status.APPROVED:
            deny_json(endpoint, response.json, outcome_text(final))
            response.dirty = True

    async def on_chunk(self, call: Call, event: SSEEvent) -> Sequence[SSEEvent]:
        if call.replayed or call.endpoint is Endpoint.EMBEDDINGS:
            return (event,)
        hold = _HOLD.get(call)
        if hold is None:
            hold = _HOLD.put(call, _StreamHold())
        hold.seen.append(event)
        kind = classify(call.endpoint.value, event)
        if kind == TEXT:
            out = [e for k, e in hold.held if k == LEAD]
            hold.held = [(k, e) for k, e in hold.held if k != LEAD]
            out.append(event)
            hold.text_started = True
            return hold.release(out, call.endpoint.value)
        if kind == LEAD and hold.text_started:
            return hold.release([event], call.endpoint.value)
        hold.held.append((kind, event))
        return ()

    async def on_stream_end(self, call: Call) -> Sequence[SSEEvent]:
        hold = _HOLD.get(call)
        if hold is None:
            return ()
        held = [e for _, e in hold.held]
        hold.held = []
        ask = _wanted(call, "response")
        if ask is None or call.replayed:
            return held
        endpoint = call.endpoint.value
        approval, spec = await self._create(
            call, ask, tool_calls_of(endpoint, assemble(endpoint, hold.seen)), stored_events(hold.seen)
        )
        nothing_sent = hold.released == 0 and not call.first_byte_sent
        try:
            final = await self._decide(call, approval, spec)
        except Conflict as exc:  # taken over by an identical re-send, or already released
            if nothing_sent:
                raise
            return deny_events(
                endpoint, held, exc.message, text_before=hold.text_started, next_seq=hold.next_seq
            )
        self._note(call, final, ask)
        if final.status is Status.APPROVED:
            return held
        if final.status is Status.PENDING:
            if nothing_sent:
                raise _pending(final)
            text = pending_text(final.tool_names(), final.id)
        else:
            text = outcome_text(final)
        return deny_events(endpoint, held, text, text_before=hold.text_started, next_seq=hold.next_seq)
