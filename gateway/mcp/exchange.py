"""One MCP HTTP request as the audit log, the metrics and the guards see it.

The audit event (kind ``mcp``) carries the caller (principal, agent, run: so it lands in the
run timeline beside the model calls of the same run), the server, the JSON-RPC method, the
tool (or resource URI / prompt name), the decision and its reasons, the approval, the latency
and what went wrong upstream. Never the arguments or the results: those are content.
"""

from __future__ import annotations

import itertools
import os
import time
from dataclasses import dataclass, field
from typing import Any

from gateway.call import Principal
from gateway.mcp.config import McpServer
from gateway.mcp.jsonrpc import McpError, Message

#: Request ids: a random per-process prefix and a counter (unique without a syscall per request).
_PREFIX = os.urandom(6).hex()
_SEQ = itertools.count(1)


@dataclass(slots=True)
class Exchange:
    server_name: str
    http_method: str
    started: float
    request_id: str = field(default_factory=lambda: f"mcp_{_PREFIX}{next(_SEQ):x}")
    principal: Principal | None = None
    agent_id: str | None = None
    run_id: str | None = None
    parent_run_id: str | None = None
    server: McpServer | None = None
    message: Message | None = None
    #: The body as the agent sent it, and as sent upstream when a guard rewrote the message.
    body: bytes = b""
    rewritten: bytes | None = None
    #: The call's redaction (its vault carries placeholders from the arguments to the answer).
    values: Any = None
    #: The policy revision that decided.
    revision: str | None = None
    #: What the call cost (``pricing.yaml`` ``mcp_tools``), once it reached the server.
    cost_usd: float | None = None
    #: (the limits reservation or None, the price) while a priced call is charged (charges.py).
    charge: Any = None
    #: The server's answer to the request arrived (a result or a JSON-RPC error).
    answered: bool = False
    #: What the call is about: a tool name, a resource URI, a prompt name.
    target: str | None = None
    decision: str = "allow"
    reasons: list[str] = field(default_factory=list)
    approval: dict[str, Any] | None = None
    redaction: dict[str, Any] | None = None
    upstream_error: str | None = None
    upstream_status: int | None = None
    #: The gateway's own refusal (its kind), if any.
    error: str | None = None
    status: int = 200
    finished: float | None = None
    #: The client speaks the stateless 2026-07-28 era (results carry ``resultType``).
    modern: bool = False
    #: The agent's W3C trace context and (agent-facing) session id, for the span.
    traceparent: str | None = None
    session: str | None = None

    @property
    def method(self) -> str | None:
        return self.message.method if self.message is not None else None

    @property
    def params(self) -> dict[str, Any]:
        return self.message.params if self.message is not None else {}

    @property
    def raw(self) -> dict[str, Any]:
        return self.message.raw if self.message is not None else {}

    @property
    def audited(self) -> bool:
        """Requests are audited; notifications and answers to the server's requests are not,
        nor GET/DELETE (they carry no call), unless the gateway refused them."""
        return self.error is not None or (self.message is not None and self.message.is_request)

    def refused(self, exc: McpError) -> None:
        self.error = exc.kind
        self.status = exc.status
        if self.decision == "allow":
            self.decision = "error" if exc.status >= 500 else "deny"
        if not self.reasons:
            self.reasons = [exc.message]

    def deny(self, reasons: list[str], decision: str = "deny") -> None:
        self.decision = decision
        self.reasons = list(reasons)

    def upstream_ended(self, kind: str | None, status: int | None = None) -> None:
        if kind is not None and self.upstream_error is None:
            self.upstream_error = kind
        if status is not None:
            self.upstream_status = status

    @property
    def outcome(self) -> str:
        """One word for metrics: allow, deny, approval, error, upstream_error."""
        if self.error is not None and self.decision == "allow":
            return "error"
        if self.upstream_error is not None and self.decision == "allow":
            return "upstream_error"
        return self.decision

    def latency_ms(self) -> float:
        end = self.finished if self.finished is not None else time.perf_counter()
        return round((end - self.started) * 1000, 3)

    def payload(self) -> dict[str, Any]:
        mcp: dict[str, Any] = {
            "server": self.server_name,
            "http_method": self.http_method,
            "method": self.method,
            "target": self.target,
            "outcome": self.outcome,
            "reasons": self.reasons,
            "latency_ms": self.latency_ms(),
        }
        if self.message is not None and self.message.id is not None:
            mcp["jsonrpc_id"] = str(self.message.id)[:64]
        for key, value in (
            ("policy_revision", self.revision),
            ("approval", self.approval),
            ("redaction", self.redaction),
            ("upstream_error", self.upstream_error),
            ("upstream_status", self.upstream_status),
            ("cost_usd", self.cost_usd),
            ("error", self.error),
        ):
            if value is not None:
                mcp[key] = value
        out = {
            "request_id": self.request_id,
            "principal": self.principal.as_input() if self.principal is not None else None,
            "agent": {"id": self.agent_id, "run_id": self.run_id, "parent_run_id": self.parent_run_id},
            "decision": self.decision,
            "status": self.status,
            "mcp": mcp,
        }
        if self.cost_usd is not None:  # summed by the spend report and the run timeline
            out["cost"] = {"settled_usd": self.cost_usd, "settled_nusd": round(self.cost_usd * 1_000_000_000)}
        return out
