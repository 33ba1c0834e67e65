"""Human approval of an MCP tool call: hold (the call waits) or defer (ask again later).

**hold**: the agent's POST is answered with an SSE stream at once. While a reviewer decides,
the gateway keeps the client informed: a ``notifications/progress`` for the request's
``progressToken`` when the client gave one (else an SSE comment, which keeps proxies from
cutting the stream), every ``progress_every_s``. Approved: the call goes to the server and its
answer follows on the same stream. Denied, expired or timed out: a tool result with
``isError`` saying so (a hold timing out follows ``approvals.timeout_outcome``).

**defer**: the answer is at once a tool result with ``isError`` carrying the approval id
(``_meta["io.wardgate/approval"]`` and the text). After a reviewer approved, the agent re-sends
the *same* call with the id (header ``X-Wardgate-Approval-Id`` or
``params._meta["io.wardgate/approval_id"]``): the call runs once; a second re-send is refused.
The re-send must be from the same key, to the same server, with the same tool and arguments
(the fingerprint), so an approval for 1,500 cannot carry a call of 150,000.

An identical call while one is pending (same key, agent, run, fingerprint) joins that approval
instead of asking a reviewer again, as for model calls.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol

import orjson

from gateway.call import Call, Endpoint
from gateway.callstate import ApprovalAsk
from gateway.errors import GatewayError
from gateway.mcp.exchange import Exchange
from gateway.mcp.relay import SSE_HEADERS, Answer, event_bytes, json_answer

HEADER = "x-wardgate-approval-id"
META_ID = "io.wardgate/approval_id"
META = "io.wardgate/approval"
TIMED_OUT = "approval timed out"


class ApprovalsPort(Protocol):
    """The approvals component as the MCP gateway uses it."""

    @property
    def service(self) -> Any: ...

    def spec(self, ask: ApprovalAsk, tool_calls: list[dict[str, Any]]) -> Any: ...


def tool_error(ex: Exchange, text: str, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``tools/call`` answer the model reads: a result with ``isError``, never a protocol error."""
    assert ex.message is not None
    result: dict[str, Any] = {"content": [{"type": "text", "text": text}], "isError": True}
    if ex.modern:
        result["resultType"] = "complete"
    if meta:
        result["_meta"] = meta
    return {"jsonrpc": "2.0", "id": ex.message.id, "result": result}


def presented_id(ex: Exchange, header: str | None) -> str | None:
    """The approval id a re-send presents (header, else ``params._meta``)."""
    if header:
        return header.strip()[:64]
    assert ex.message is not None
    meta = ex.message.params.get("_meta")
    value = meta.get(META_ID) if isinstance(meta, dict) else None
    return value[:64] if isinstance(value, str) and value else None


class McpApprovals:
    def __init__(self, approvals: ApprovalsPort, progress_every_s: float = 5.0) -> None:
        self.approvals = approvals
        self.progress_every_s = progress_every_s

    @property
    def enabled(self) -> bool:
        return self.approvals.service is not None

    def _carrier(self, ex: Exchange, body: dict[str, Any]) -> Call:
        """The approval record's request: who asked, which server, which call."""
        return Call(
            ex.request_id,
            Endpoint.MCP,
            body,
            {},
            model=f"mcp/{ex.server_name}",
            principal=ex.principal,
            agent_id=ex.agent_id,
            run_id=ex.run_id,
            parent_run_id=ex.parent_run_id,
        )

    def _note(self, ex: Exchange, approval: Any, **more: Any) -> dict[str, Any]:
        note = {"id": approval.id, "status": str(approval.status), "mode": approval.mode, **more}
        ex.approval = note
        return {META: note}

    async def resend(
        self, ex: Exchange, approval_id: str, fingerprint: str, forward: Callable[[], Awaitable[Answer]]
    ) -> Answer:
        """A re-send presenting an approval: the call runs once if it was approved for exactly it."""
        service = self.approvals.service
        approval = await service.get(approval_id) if service is not None else None
        key_id = ex.principal.key_id if ex.principal is not None else None
        if approval is None or approval.principal.get("key_id") != key_id:
            ex.deny([f"unknown approval {approval_id}"])
            return json_answer(tool_error(ex, f"Wardgate: no approval {approval_id} for this key."))
        if approval.fingerprint != fingerprint or approval.endpoint != Endpoint.MCP.value:
            ex.deny([f"approval {approval_id} was given for another call"])
            return json_answer(
                tool_error(
                    ex,
                    f"Wardgate: approval {approval_id} was given for another call (server, tool or arguments differ).",
                )
            )
        return await self._conclude(ex, approval, None, forward, stream=False)

    async def ask(
        self,
        ex: Exchange,
        verdict: Any,
        tool_calls: list[dict[str, Any]],
        fingerprint: str,
        body: dict[str, Any],
        forward: Callable[[], Awaitable[Answer]],
        sse_ok: bool,
        values: list[dict[str, Any]] | None = None,
    ) -> Answer:
        """Create (or join) the approval; ``values``: the call with the agent's real values when
        redaction changed its arguments, sealed beside the record for its reviewers only."""
        decision = verdict.decision
        ask = ApprovalAsk(
            "request", tuple(dict(i) for i in decision.require_approval), decision.to_dict(), verdict.revision
        )
        spec = self.approvals.spec(ask, tool_calls)
        service = self.approvals.service
        mode = spec.mode if sse_ok else "defer"  # a client that reads no SSE cannot be held
        holder = ex.request_id if mode == "hold" else None
        ex.deny([str(i.get("reason")) for i in decision.require_approval], decision="approval")
        try:
            approval, _created = await service.create_or_join(
                self._carrier(ex, body), "request", spec, fingerprint, None, values=values, holder=holder
            )
        except GatewayError as exc:
            return json_answer(tool_error(ex, f"Wardgate: the approval could not be created: {exc.message}"))
        if mode == "defer" or approval.mode == "defer":
            meta = self._note(ex, approval)
            return json_answer(tool_error(ex, _pending_text(approval), meta))
        if approval.holder not in (None, ex.request_id):
            with contextlib.suppress(GatewayError):
                approval = await service.claim(approval.id, ex.request_id)
        self._note(ex, approval)
        return Answer(200, dict(SSE_HEADERS), stream=self._hold(ex, approval, spec.hold_s, forward))

    async def _hold(
        self, ex: Exchange, approval: Any, hold_s: float, forward: Callable[[], Awaitable[Answer]]
    ) -> AsyncIterator[bytes]:
        service = self.approvals.service
        assert ex.message is not None
        meta = ex.message.params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        waiter = asyncio.ensure_future(service.wait(approval.id, hold_s, holder=ex.request_id))
        tick = 0
        try:
            while True:
                text = f"waiting for approval {approval.id} ({', '.join(approval.reasons)[:200]})"
                if token is not None and isinstance(token, str | int):
                    tick += 1
                    note = {"progressToken": token, "progress": tick, "message": text}
                    yield event_bytes({"jsonrpc": "2.0", "method": "notifications/progress", "params": note})
                else:
                    yield b": " + text.replace("\n", " ").encode() + b"\n\n"
                done, _ = await asyncio.wait({waiter}, timeout=self.progress_every_s)
                if done:
                    break
        finally:
            if not waiter.done():
                waiter.cancel()  # the client left: the approval stays pending
        final = waiter.result()
        if str(final.status) == "pending" and final.holder not in (None, ex.request_id):
            yield event_bytes(tool_error(ex, f"Wardgate: an identical call took over approval {final.id}."))
            return
        if (
            str(final.status) == "pending"
            and service.settings.timeout_outcome == "deny"
            and not service.holds_released
        ):
            final = await service.expire(final.id, TIMED_OUT, holder=ex.request_id)
        answer = await self._conclude(ex, final, ex.request_id, forward, stream=True)
        if answer.stream is not None:
            async for chunk in answer.stream:
                yield chunk
        else:
            yield event_bytes(orjson.loads(answer.body))

    async def _conclude(
        self,
        ex: Exchange,
        approval: Any,
        claimant: str | None,
        forward: Callable[[], Awaitable[Answer]],
        stream: bool,
    ) -> Answer:
        status = str(approval.status)
        meta = self._note(ex, approval, reviewer=approval.decided_by)
        if status == "approved":
            try:
                await self.approvals.service.consume(approval.id, claimant)
            except GatewayError as exc:
                ex.deny([exc.message])
                return json_answer(tool_error(ex, f"Wardgate: {exc.message}", meta))
            ex.decision, ex.reasons = "allow", [f"approved ({approval.id})"]
            return await forward()
        if status == "pending":
            ex.deny([f"approval {approval.id} pending"], decision="approval")
            return json_answer(tool_error(ex, _pending_text(approval), meta))
        why = approval.comment or approval.outcome_reason or status
        ex.deny([f"approval {approval.id} {status}: {why}"])
        return json_answer(
            tool_error(
                ex, f"Wardgate: approval {approval.id} was {status} ({why}); the tool did not run.", meta
            )
        )


def _pending_text(approval: Any) -> str:
    return (
        f"Wardgate: this call needs approval ({'; '.join(approval.reasons)}). Approval {approval.id} is pending; "
        f"once a reviewer approved it, send the same call again with the header {HEADER}: {approval.id} "
        f'(or params._meta["{META_ID}"]).'
    )
