"""A small pipeline around the approval stages, fed with ``Call``s (no HTTP).

The policy stages here stand in for the real ones (built elsewhere): they set
``call.approval_ask`` the way docs/architecture.md describes (the decision shape), and the
response one holds back non-text stream events until the end like the real policy stage.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from gateway.approvals.answers import tool_calls_of
from gateway.approvals.service import ApprovalService
from gateway.approvals.stage import ApprovalRequestStage, ApprovalResponseStage
from gateway.approvals.store import ListQuery
from gateway.approvals.stream_answers import TEXT, assemble, classify
from gateway.call import Call, Endpoint, ModelResponse
from gateway.callstate import ApprovalAsk, Slot
from gateway.pipeline import Pipeline, Stage
from gateway.sse import SSEEvent
from tests.waiting import wait_until_async
from wardgate_mock import MockOverrides, generate

THRESHOLD = 1000
_FAKE: Slot[dict[str, list[SSEEvent]]] = Slot("fake_policy")


def _big_transfers(endpoint: str, body: Any) -> list[dict[str, Any]]:
    return [
        c
        for c in tool_calls_of(endpoint, body)
        if c["name"] == "transfer_funds" and (c["arguments"] or {}).get("amount", 0) > THRESHOLD
    ]


class FakePolicyRequest(Stage):
    name: ClassVar[str] = "policy_request"

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] | None = None

    async def on_request(self, call: Call) -> None:
        if self.items:
            call.approval_ask = ApprovalAsk("request", tuple(dict(i) for i in self.items), {})


class FakeForward(Stage):
    name: ClassVar[str] = "forward"

    def __init__(self) -> None:
        self.calls = 0
        self.overrides = MockOverrides(tool_calls=[("transfer_funds", {"amount": 5000, "to": "ACME"})])
        self.prefix_text: str | None = None

    async def on_request(self, call: Call) -> None:
        self.calls += 1
        answer = generate(call.endpoint, call.body, stream=call.stream, overrides=self.overrides)
        if not call.stream:
            call.response = ModelResponse(200, {"content-type": "application/json"}, json=answer.json)
            return
        events = list(answer.events or [])
        if self.prefix_text and call.endpoint is Endpoint.CHAT:
            head = events[0].json
            text = SSEEvent.from_json(
                {
                    **head,
                    "choices": [{"index": 0, "delta": {"content": self.prefix_text}, "finish_reason": None}],
                }
            )
            events.insert(1, text)

        async def stream() -> Any:
            for e in events:  # one event per network read: the slowest upstream there is
                yield [e]

        call.response = ModelResponse(200, {"content-type": "text/event-stream"}, events=stream())


class FakePolicyResponse(Stage):
    """Requires approval for transfers above the threshold; holds non-text events like the real one."""

    name: ClassVar[str] = "policy_response"

    def __init__(self) -> None:
        self.mode: str | None = None
        self.extra: dict[str, Any] = {}

    def _decide(self, call: Call, body: Any) -> None:
        big = _big_transfers(call.endpoint.value, body)
        if big:
            items = [
                {
                    "reason": f"transfer of {c['arguments']['amount']} needs approval",
                    "tool_call_id": c["id"],
                    "approvers": ["finance"],
                    **({"mode": self.mode} if self.mode else {}),
                    **self.extra,
                }
                for c in big
            ]
            call.approval_ask = ApprovalAsk("response", tuple(items), {})

    async def on_response(self, call: Call, response: ModelResponse) -> None:
        self._decide(call, response.json)

    async def on_chunk(self, call: Call, event: SSEEvent) -> Sequence[SSEEvent]:
        state = _FAKE.get(call) or _FAKE.put(call, {"seen": [], "held": []})
        state["seen"].append(event)
        if classify(call.endpoint.value, event) == TEXT:
            return (event,)
        state["held"].append(event)
        return ()

    async def on_stream_end(self, call: Call) -> Sequence[SSEEvent]:
        state = _FAKE.get(call) or {"seen": [], "held": []}
        self._decide(call, assemble(call.endpoint.value, state["seen"]))
        return state["held"]


class StageRig:
    def __init__(self, service: ApprovalService) -> None:
        self.service = service
        self.policy_request = FakePolicyRequest()
        self.forward = FakeForward()
        self.policy_response = FakePolicyResponse()
        self.pipeline = Pipeline(
            [
                ApprovalRequestStage(service),
                ApprovalResponseStage(service),
                self.policy_request,
                self.forward,
                self.policy_response,
            ]
        )

    async def run(
        self, call: Call, released: list[SSEEvent] | None = None
    ) -> tuple[ModelResponse, list[SSEEvent]]:
        """Drive one call like the HTTP layer does; stream events land in ``released`` as they come."""
        response = await self.pipeline.run_request(call)
        out = released if released is not None else []
        if response.events is not None:
            async for batch in response.events:
                await self.pipeline.release(call, batch, out)
            await self.pipeline.end_stream(call, out)
        else:
            await self.pipeline.run_response(call, response)
        return response, out

    async def pending_id(self, within_s: float = 2.0) -> str:
        """The id of the one approval currently pending (waits for it to appear)."""

        async def pending() -> list[Any]:
            return (await self.service.list(ListQuery(status="pending"))).items

        items = await wait_until_async(pending, within_s, message="no approval became pending")
        return items[0].id
