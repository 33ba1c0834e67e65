"""What the gateway can say no with, as the orchestrator acts on it.

GatewayRefusal
├── PolicyDenied        403: a policy refused this call     → the step is reported denied, the run goes on
├── RunHalted           429 budget_exceeded / loop_detected / run_call_limit
│                                                           → the whole run stops, with a report
├── ApprovalUnresolved  a deferred approval was not decided in time (or was withdrawn)
│                                                           → the step fails
├── CallFailed          transient: rate limited after the SDK's retries, 5xx, timeout, network
│                                                           → the step is retried from its checkpoint
└── BadCall             400/401/404, 502 upstream_auth_failed: retrying cannot help
                                                            → the step fails
"""

from __future__ import annotations

from typing import Any


class GatewayRefusal(Exception):
    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        reasons: list[str] | None = None,
        request_id: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.reasons = list(reasons or [])
        self.request_id = request_id
        self.body = dict(body or {})

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": type(self).__name__,
            "message": self.message,
            "status": self.status,
            "code": self.code,
        }
        if self.reasons:
            out["reasons"] = self.reasons
        if self.request_id:
            out["request_id"] = self.request_id
        return out


class PolicyDenied(GatewayRefusal):
    pass


class RunHalted(GatewayRefusal):
    pass


class ApprovalUnresolved(GatewayRefusal):
    pass


class CallFailed(GatewayRefusal):
    pass


class BadCall(GatewayRefusal):
    pass


#: Error codes that end the run, not just the call: waiting does not help and the next call
#: of the run would be refused the same way.
HALT_CODES = frozenset({"budget_exceeded", "loop_detected", "run_call_limit"})


def refusal_of(
    status: int, body: dict[str, Any], fallback: str, request_id: str | None = None
) -> GatewayRefusal:
    """The refusal for the gateway's OpenAI-shaped error ``body`` (``{"message", "code",
    "reasons", ...}``) answered with HTTP ``status``: a model call's error, or the same error
    carried by an MCP tool result (``_meta["io.wardgate/error"]``, e.g. a tool call over budget)."""
    code = _v if isinstance(_v := body.get("code"), str) else None
    raw = body.get("reasons")
    reasons = [str(r) for r in raw] if isinstance(raw, list) else []
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "reasons": reasons,
        "body": body,
        "request_id": request_id,
    }
    message = str(body.get("message") or fallback)
    if status == 429 and code in HALT_CODES:
        return RunHalted(message, **kwargs)
    if status == 403:
        return PolicyDenied(message, **kwargs)
    if code == "upstream_auth_failed":  # the gateway's provider credentials: retrying cannot help
        return BadCall(message, **kwargs)
    if status in (408, 409, 429) or status >= 500:
        return CallFailed(message, **kwargs)
    return BadCall(message, **kwargs)
