"""The two policy stages of the pipeline: ``policy_request`` and ``policy_response``.

Both ask the same ``PolicyService`` (one snapshot, one input per phase) and apply the
decision with ``effects``; the response stage also gates streams (``stream.StreamGate``).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.call import Call, ModelResponse
from gateway.callstate import Slot
from gateway.pipeline import Stage
from gateway.policy.answer import answer_view
from gateway.policy.effects import apply_request_effects, hand_off_approval, refusal, resolve
from gateway.policy.input import forget_keys
from gateway.policy.service import PolicyService
from gateway.policy.stream import StreamGate
from gateway.sse import SSEEvent

#: A request decision tagged ``hold_stream``: the response stage holds the whole stream's text.
_HOLD_TEXT: Slot[bool] = Slot("policy.hold_text")
#: The response stage's gate on the call's stream.
_GATE: Slot[StreamGate] = Slot("policy.stream_gate")


class PolicyRequestStage(Stage):
    name = "policy_request"

    def __init__(self, service: PolicyService) -> None:
        self.service = service

    async def on_request(self, call: Call) -> None:
        verdict = await self.service.decide(call, "request")
        outcome, reasons = resolve(self.service, verdict)
        self.service.record(call, self.name, verdict, outcome, reasons)
        decision = verdict.decision
        # Before a refusal: what a denied agent sent is what an auditor most wants to see.
        call.capture = decision is not None and decision.capture
        error = refusal(outcome, reasons, verdict)
        if error is not None:
            raise error
        if decision is None:  # failing open: nothing to apply
            return
        hand_off_approval(call, verdict)
        apply_request_effects(call, decision)
        if decision.redact:
            # Redaction ran before this stage (policies decide on its ``pii`` summary), so a
            # decision that changes redaction actions re-redacts the request with them.
            redaction = self.service.redaction()
            if redaction is not None:
                await redaction.reapply(call)
                forget_keys(call)  # the texts the keys were made of changed in place
        if decision.tags.get("hold_stream") is True:
            _HOLD_TEXT.put(call, True)


class PolicyResponseStage(Stage):
    name = "policy_response"
    reads_stream = True

    def __init__(self, service: PolicyService) -> None:
        self.service = service

    async def on_response(self, call: Call, response: ModelResponse) -> None:
        if response.status >= 400:
            return  # an upstream error is not an answer to police
        verdict = await self.service.decide(call, "response", answer_view(call.endpoint, response.json))
        outcome, reasons = resolve(self.service, verdict)
        self.service.record(call, self.name, verdict, outcome, reasons)
        error = refusal(outcome, reasons, verdict)
        if error is not None:
            raise error
        hand_off_approval(call, verdict)

    def _gate(self, call: Call) -> StreamGate:
        gate = _GATE.get(call)
        if gate is None:
            hold_text = self.service.settings.stream_hold_text or bool(_HOLD_TEXT.get(call))
            gate = _GATE.put(call, StreamGate(self.service, self.name, call, hold_text))
        return gate

    async def on_chunk(self, call: Call, event: SSEEvent) -> Sequence[SSEEvent]:
        return await self._gate(call).feed(call, event)

    async def on_stream_end(self, call: Call) -> Sequence[SSEEvent]:
        return await self._gate(call).end(call)
