"""The response policy on a stream: hold what the decision could stop, release the rest.

Plain text streams ahead (unless the settings or the request decision ask to hold it). From
the first event that carries a tool call, a finish reason or usage, every event is held, in
order, until the stream's content and tool calls are complete (chat: ``[DONE]`` or the end of
the stream; responses API: its terminal event). Then the policy decides once:

- allow (or approval handed to the approval stage): the held events go out unchanged;
- deny, or an engine failure failing closed: one SSE error event goes out in their place
  and nothing after it (headers and text are already sent, so an HTTP error is not
  possible any more).
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway.call import Call, Endpoint
from gateway.callstate import StreamAnswer
from gateway.errors import GatewayError
from gateway.policy.answer import FINAL, HOLD, stream_view
from gateway.policy.effects import hand_off_approval, refusal, resolve
from gateway.policy.service import PolicyService
from gateway.sse import SSEEvent


def error_event(call: Call, error: GatewayError) -> SSEEvent:
    """An error in the stream's own dialect; the openai SDK raises it as ``APIError``."""
    body = error.to_dict()
    if call.endpoint is Endpoint.RESPONSES:
        inner = body["error"]
        return SSEEvent.from_json(
            {
                "type": "error",
                "code": inner["code"],
                "message": inner["message"],
                "param": inner["param"],
                **body,
            },
            event="error",
        )
    return SSEEvent.from_json(body)


class StreamGate:
    """Per-call state of ``PolicyResponseStage`` on one stream."""

    __slots__ = ("_held", "_holding", "_service", "_stage", "_state", "_view")

    def __init__(self, service: PolicyService, stage: str, call: Call, hold_text: bool) -> None:
        self._service = service
        self._stage = stage
        self._view = stream_view(call.endpoint)
        self._holding = hold_text
        self._held: list[SSEEvent] = []
        self._state = "open"  # "open" → "released" | "stopped"

    async def feed(self, call: Call, event: SSEEvent) -> Sequence[SSEEvent]:
        state = self._state
        if state == "released":
            return (event,)
        if state == "stopped":
            return ()
        kind = self._view.feed(event)
        if kind == FINAL:
            self._held.append(event)
            return await self._decide(call)
        if self._holding or kind == HOLD:
            self._holding = True
            self._held.append(event)
            return ()
        return (event,)

    async def end(self, call: Call) -> Sequence[SSEEvent]:
        """The upstream stream ended; decide if its final event never came."""
        if self._state != "open":
            return ()
        return await self._decide(call)

    async def _decide(self, call: Call) -> list[SSEEvent]:
        view = self._view.view()
        call.streamed = StreamAnswer(
            tuple(t for t in view.get("tool_calls") or () if isinstance(t, dict)), view.get("finish_reason")
        )
        verdict = await self._service.decide(call, "response", view)
        outcome, reasons = resolve(self._service, verdict)
        self._service.record(call, self._stage, verdict, outcome, reasons)
        held, self._held = self._held, []
        error = refusal(outcome, reasons, verdict)
        if error is not None:
            self._state = "stopped"
            return [error_event(call, error)]
        hand_off_approval(call, verdict)
        self._state = "released"
        return held
