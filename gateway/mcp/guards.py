"""The guards of each MCP method: what the gateway decides before and after the server acts.

    tools/list      texts.py: every text redacted; only the tools the policy would let this
                    caller call (stage "list"), none whose texts carry an injection marker
                    (tool poisoning); resources, templates and prompts alike; the handshake's
                    instructions and serverInfo too
    tools/call      limits → arguments redacted (prompt actions) → policy (stage "call") →
                    [approval: hold or defer] → server → answer redacted (answer actions,
                    placeholders restored) → policy (stage "result": injection markers)
    resources/read  policy on the URI → server → contents redacted (base64 blobs decoded;
                    a binary one withheld with mcp.binary_blobs: refuse) → policy on the result
    prompts/get     arguments redacted → policy on the name → server → messages redacted →
                    policy on the result

A refused ``tools/call`` is a result with ``isError`` (the model reads why and goes on);
a refused read or prompt a JSON-RPC error (-32003). When the policy engine cannot decide, the
call is refused (-32011 / an error result) unless ``policy.fail_open`` (or ``mcp`` in
``policy.fail_open_endpoints``) says otherwise. Each guard is skipped while its component
is off, as on the model-call path.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import orjson

from gateway.errors import BadRequest
from gateway.mcp import identity
from gateway.mcp.approval import HEADER, McpApprovals, presented_id, tool_error
from gateway.mcp.charges import McpCharges
from gateway.mcp.exchange import Exchange
from gateway.mcp.jsonrpc import FORBIDDEN, INVALID_PARAMS, POLICY_UNAVAILABLE, McpError
from gateway.mcp.protocol import refused_input_requests
from gateway.mcp.relay import Answer, AnswerHook, json_answer
from gateway.mcp.texts import LISTS, McpTexts
from gateway.redaction.values import Blocked, ValueRedaction

Forward = Callable[[], Awaitable[Answer]]


class PolicyPort(Protocol):
    """The policy service as the MCP gateway uses it."""

    async def evaluate(self, phase: str, doc: dict[str, Any], request_id: str | None = None) -> Any: ...


class McpGuards:
    def __init__(
        self,
        policy: Callable[[], PolicyPort | None],
        redactor: Callable[[], Any],
        approvals: McpApprovals,
        learn_tools: Callable[[str, list[str]], None],
        limiter: Any = None,
        price: Callable[[str, str], float | None] | None = None,
        charges: McpCharges | None = None,
        binary_blobs: str = "pass",
    ) -> None:
        self._binary_blobs = binary_blobs
        self._price = price
        self.charges = charges
        self._policy = policy
        self._redactor = redactor
        self.approvals = approvals
        self.limiter = limiter
        #: Listings and the handshake: the texts a model reads besides answers (texts.py).
        self.texts = McpTexts(self._decide, redactor, lambda: self._policy() is not None, learn_tools)

    # -- dispatch ------------------------------------------------------------------------
    async def before(self, ex: Exchange, headers: Any, forward: Forward, sse_ok: bool) -> Answer | None:
        method = ex.method
        if method == "tools/call":
            return await self._call(ex, headers, forward, sse_ok)
        if method == "resources/read":
            uri = ex.params.get("uri")
            if not isinstance(uri, str) or not uri:
                raise _invalid(ex, "resources/read needs a string 'uri'.")
            ex.target = uri
            await self._check(ex, "call", resource={"uri": uri})
        elif method == "prompts/get":
            name = ex.params.get("name")
            if not isinstance(name, str) or not name:
                raise _invalid(ex, "prompts/get needs a string 'name'.")
            ex.target = name
            arguments = ex.params.get("arguments") or {}
            if not isinstance(arguments, dict):
                raise _invalid(ex, "prompts/get 'arguments' must be an object.")
            if await self._redact_out(ex, arguments):
                ex.rewritten = orjson.dumps(ex.raw)
            prompt = {**identity.tool(name, identity.exact_arguments(b"", arguments)), "kind": "prompt"}
            await self._check(ex, "call", prompt=prompt)
        elif method == "completion/complete":
            # What the agent typed so far goes to the server like a tool's arguments.
            argument = ex.params.get("argument")
            if isinstance(argument, dict) and await self._redact_out(ex, argument):
                ex.rewritten = orjson.dumps(ex.raw)
        return None

    def answer_hook(self, ex: Exchange) -> AnswerHook | None:
        method = ex.method
        if method in LISTS:
            return self.texts.list_hook(ex)
        if method in ("tools/call", "resources/read", "prompts/get"):
            return self._result_hook(ex)
        if self._redactor() is not None:
            return self._redacted_hook(ex)  # completion values, templates, ...: the agent reads them too
        return None

    def handshake_hook(self, ex: Exchange) -> AnswerHook:
        """``initialize`` / ``server/discover``: capabilities filtered, instructions guarded."""
        return self.texts.handshake_hook(ex)

    def notice_hook(self, ex: Exchange) -> AnswerHook | None:
        """A server's notification on the stream of a request (a log line, a progress message)
        or on the GET stream reaches the agent like the answer: redacted with the answer's
        actions (and this call's placeholders restored)."""
        redactor = self._redactor()
        if redactor is None:
            return None

        async def hook(message: dict[str, Any]) -> dict[str, Any]:
            params = message.get("params")
            if isinstance(params, dict) and params:
                if not isinstance(ex.values, ValueRedaction):
                    ex.values = ValueRedaction(redactor)
                found = await ex.values.inbound(params, "notifications")
                if found["entities"]:
                    ex.redaction = {**(ex.redaction or {}), "notifications": found}
            return message

        return hook

    # -- policy --------------------------------------------------------------------------
    async def _decide(self, ex: Exchange, stage: str, **parts: Any) -> Any:
        """The verdict, or None when no policy runs; raises on a failure that fails closed."""
        policy = self._policy()
        if policy is None:
            return None
        verdict = await policy.evaluate("mcp", identity.document(ex, stage, **parts), ex.request_id)
        if verdict.decision is None and not verdict.fail_open:
            ex.decision, ex.reasons = "error", [f"policy engine unavailable: {verdict.error}"]
            raise McpError(
                200,
                POLICY_UNAVAILABLE,
                "The policy engine could not decide this request, so it was refused. Try again later.",
                id=_id(ex),
                kind="policy_unavailable",
            )
        if ex.revision is None:
            ex.revision = verdict.revision
        return verdict

    async def _check(self, ex: Exchange, stage: str, **parts: Any) -> None:
        """A read or a prompt: refused with a JSON-RPC error when the policy denies it."""
        verdict = await self._decide(ex, stage, **parts)
        if verdict is not None and verdict.decision is not None and verdict.decision.deny:
            reasons = list(verdict.decision.deny)
            ex.deny(reasons)
            raise McpError(
                200,
                FORBIDDEN,
                "Refused by Wardgate policy: " + "; ".join(reasons),
                id=_id(ex),
                kind="policy_denied",
            )

    # -- tools/call ----------------------------------------------------------------------
    async def _call(self, ex: Exchange, headers: Any, forward: Forward, sse_ok: bool) -> Answer | None:
        name = ex.params.get("name")
        arguments = ex.params.get("arguments", {})
        if not isinstance(name, str) or not name or len(name) > 256:
            raise _invalid(ex, "tools/call needs a string 'name' (at most 256 characters).")
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise _invalid(ex, "tools/call 'arguments' must be an object.")
        ex.target = name
        if self.limiter is not None:
            refused = await self.limiter.admit(ex, name)
            if refused is not None:
                ex.deny([refused], decision="rate_limited")
                return json_answer(tool_error(ex, f"Wardgate: {refused}"))
        # What the agent sent, as JSON: the decision's own redaction and the approval's
        # reviewers start from it (a copy is made only when one of them needs it).
        sent = orjson.dumps(arguments)
        try:
            if await self._redact_out(ex, arguments, before=sent):
                ex.params["arguments"] = arguments
                ex.rewritten = orjson.dumps(ex.raw)
        except Blocked as exc:
            ex.deny([f"arguments contain {', '.join(exc.types)}"])
            return json_answer(
                tool_error(
                    ex, f"Wardgate: the arguments contain data that may not be sent: {', '.join(exc.types)}."
                )
            )
        except BadRequest as exc:  # too many values or candidates to judge: refused, never half-scanned
            ex.deny([exc.message])
            return json_answer(tool_error(ex, f"Wardgate: {exc.message}"))
        body = ex.rewritten or ex.body
        parsed = identity.exact_arguments(body, arguments)
        if self.charges is not None:  # a priced call is reserved on the budgets right before it runs
            charges, direct = self.charges, forward

            async def forward() -> Answer:
                return await charges.run(ex, name, direct)

        approval_id = presented_id(ex, headers.get(HEADER))
        if approval_id is not None and self.approvals.enabled:
            fingerprint = identity.fingerprint(ex.server_name, name, parsed)
            return await self.approvals.resend(ex, approval_id, fingerprint, forward)
        try:
            verdict = await self._decide(ex, "call", tool=identity.tool(name, parsed))
        except McpError as exc:
            return json_answer(tool_error(ex, "Wardgate: " + exc.message))
        decision = verdict.decision if verdict is not None else None
        if decision is None:
            return await forward()
        if decision.deny:
            ex.deny(list(decision.deny))
            return json_answer(
                tool_error(
                    ex,
                    "Wardgate refused this tool call: " + "; ".join(decision.deny),
                    {"io.wardgate/reasons": list(decision.deny)},
                )
            )
        if decision.redact and self._redactor() is not None:
            # The decision names other actions: redo the arguments from what the agent sent.
            arguments = orjson.loads(sent)
            await self._redact_out(ex, arguments, decision.redact)
            ex.params["arguments"] = arguments
            ex.rewritten = orjson.dumps(ex.raw)
        if decision.require_approval:
            if not self.approvals.enabled:
                reasons = [f"approval required: {i.get('reason')}" for i in decision.require_approval]
                ex.deny(reasons)
                return json_answer(tool_error(ex, "Wardgate refused this tool call: " + "; ".join(reasons)))
            # The record shows placeholders, also for values that reach the tool as sent.
            shown = ex.params.get("arguments")
            if ex.values is not None:
                shown = ex.values.conceal(shown)
            calls = [{"id": str(ex.message.id) if ex.message else "", "name": name, "arguments": shown}]
            body_doc = {"server": ex.server_name, "tool": name, "arguments": shown}
            original = orjson.loads(sent)
            real = None
            if shown != original:  # reviewers see what the agent sent, not the placeholders
                real = [{**calls[0], "arguments": original}]
            # The arguments the policy judged (the fingerprint only approvals need).
            fingerprint = identity.fingerprint(ex.server_name, name, parsed)
            return await self.approvals.ask(ex, verdict, calls, fingerprint, body_doc, forward, sse_ok, real)
        return await forward()

    # -- redaction -----------------------------------------------------------------------
    async def _redact_out(
        self,
        ex: Exchange,
        arguments: dict[str, Any],
        policy: dict[str, Any] | None = None,
        before: bytes | None = None,
    ) -> bool:
        """Redact ``arguments`` in place; True when any text changed (``before``: the
        arguments as JSON, when the caller has them)."""
        redactor = self._redactor()
        if redactor is None or not arguments:
            return False
        if before is None:
            before = orjson.dumps(arguments)
        values = ValueRedaction(redactor, policy)
        ex.values = values
        found = await values.outbound(arguments)
        # "args", not "arguments": the audit scrub drops any member named "arguments" (call
        # content), which would hide this summary of counts and paths from the audit record.
        ex.redaction = {"args": found}
        return orjson.dumps(arguments) != before

    # -- answers -------------------------------------------------------------------------
    def _result_hook(self, ex: Exchange) -> AnswerHook:
        judged = self._judged_hook(ex)

        async def hook(answer: dict[str, Any]) -> dict[str, Any]:
            try:
                return await judged(answer)
            except BadRequest as exc:  # too many candidates to judge: withheld, never half-scanned
                reason = f"the answer could not be scanned for sensitive data: {exc.message}"
                ex.deny([reason])
                if ex.method == "tools/call":
                    return tool_error(ex, f"Wardgate withheld the answer of this tool: {reason}")
                raise McpError(
                    200, FORBIDDEN, f"Wardgate withheld the answer: {reason}", id=_id(ex), kind="too_complex"
                ) from None

        return hook

    def _judged_hook(self, ex: Exchange) -> AnswerHook:
        async def hook(answer: dict[str, Any]) -> dict[str, Any]:
            ex.answered = True
            result = answer.get("result")
            if not isinstance(result, dict):
                return await self._redact_answer(ex, answer)  # an error's message quotes data too
            asks = refused_input_requests(result)
            if asks:  # the server asks the agent's model or user: outside the guards
                reason = f"the server asked the client for {', '.join(asks)}, which Wardgate does not relay"
                ex.deny([reason])
                if ex.method == "tools/call":
                    return tool_error(ex, f"Wardgate: {reason}; the call did not complete.")
                raise McpError(200, FORBIDDEN, f"Wardgate: {reason}.", id=_id(ex), kind="input_refused")
            if ex.method == "tools/call" and ex.target is not None and self._price is not None:
                ex.cost_usd = self._price(ex.server_name, ex.target)  # the server acted: it is charged
            redactor = self._redactor()
            if redactor is not None:
                values = ex.values if isinstance(ex.values, ValueRedaction) else ValueRedaction(redactor)
                found = await values.inbound(result)
                ex.redaction = {**(ex.redaction or {}), "result": found}
                if values.opaque and self._binary_blobs == "refuse":
                    reason = f"the answer holds {len(values.opaque)} binary blob(s) redaction cannot read"
                    ex.deny([reason])
                    if ex.method == "tools/call":
                        return tool_error(ex, f"Wardgate withheld the answer of this tool: {reason}.")
                    raise McpError(
                        200,
                        FORBIDDEN,
                        f"Wardgate withheld the answer: {reason}.",
                        id=_id(ex),
                        kind="policy_denied",
                    )
            if self._policy() is None:
                return answer
            parts: dict[str, Any] = {"result": {"text": identity.result_text(result)}}
            if ex.method == "tools/call" and ex.target is not None:
                parts["tool"] = identity.tool(ex.target, None)
            try:
                verdict = await self._decide(ex, "result", **parts)
            except McpError as exc:
                if ex.method == "tools/call":
                    return tool_error(ex, "Wardgate withheld the answer: " + exc.message)
                raise
            if verdict is None or verdict.decision is None or not verdict.decision.deny:
                return answer
            reasons = list(verdict.decision.deny)
            ex.deny(reasons)
            if ex.method == "tools/call":
                return tool_error(ex, "Wardgate withheld the answer of this tool: " + "; ".join(reasons))
            raise McpError(
                200,
                FORBIDDEN,
                "Wardgate withheld the answer: " + "; ".join(reasons),
                id=_id(ex),
                kind="policy_denied",
            )

        return hook

    def _redacted_hook(self, ex: Exchange) -> AnswerHook:
        async def hook(answer: dict[str, Any]) -> dict[str, Any]:
            return await self._redact_answer(ex, answer)

        return hook

    async def _redact_answer(self, ex: Exchange, answer: dict[str, Any]) -> dict[str, Any]:
        """The answer's ``result`` or ``error`` redacted with the answer actions (no policy)."""
        redactor = self._redactor()
        for part in ("result", "error"):
            value = answer.get(part)
            if redactor is not None and isinstance(value, dict) and value:
                values = ex.values if isinstance(ex.values, ValueRedaction) else ValueRedaction(redactor)
                found = await values.inbound(value, part)
                if found["entities"]:
                    ex.redaction = {**(ex.redaction or {}), part: found}
        return answer


def _id(ex: Exchange) -> Any:
    return ex.message.id if ex.message is not None else None


def _invalid(ex: Exchange, message: str) -> McpError:
    return McpError(200, INVALID_PARAMS, "Invalid params: " + message, id=_id(ex), kind="invalid_params")
