"""The one error tree of the gateway.

Every error a client can see is a subclass of ``GatewayError``. Each class knows its HTTP
status and its OpenAI error ``type`` / ``code``, so a stage stops the pipeline by raising one
and the HTTP layer renders it the same way everywhere (``{"error": {...}}``).

    GatewayError
    ├── BadRequest                 400 invalid_request_error
    │   ├── InvalidJSON            400 invalid_json
    │   ├── SensitiveDataBlocked   400 sensitive_data_blocked
    │   ├── PayloadTooLarge        413 payload_too_large
    │   ├── HeadersTooLarge        431 headers_too_large    (written by the HTTP protocol)
    │   └── RequestTimeout         408 request_timeout      (written by the HTTP protocol)
    ├── AuthenticationError        401 invalid_api_key
    ├── PermissionDenied           403 permission_denied
    │   ├── ModelNotAllowed        403 model_not_allowed
    │   ├── Denied                 403 policy_denied
    │   └── ApprovalMismatch       403 approval_mismatch
    ├── NotFound                   404 not_found
    │   └── ModelNotFound          404 model_not_found
    ├── Conflict                   409 conflict
    │   ├── ApprovalPending        409 approval_pending
    │   └── AlreadyDecided         409 already_decided
    ├── RateLimited                429 rate_limit_exceeded
    │   ├── BudgetExceeded         429 budget_exceeded      (not retryable)
    │   └── LoopDetected           429 loop_detected        (not retryable)
    ├── ServiceUnavailable         503 service_unavailable
    │   ├── PolicyUnavailable      503 policy_unavailable
    │   ├── LimitsUnavailable      503 limits_unavailable
    │   ├── AuditUnavailable       503 audit_unavailable
    │   ├── Overloaded             503 overloaded           (retry-after; retryable)
    │   └── ShuttingDown           503 shutting_down        (retryable: another replica answers)
    └── UpstreamError              502 upstream_error
        ├── UpstreamTimeout        504 upstream_timeout
        ├── UpstreamAuthFailed     502 upstream_auth_failed (the provider refused the gateway's own credentials)
        ├── UpstreamRateLimited    429 (the provider's own 429, its retry headers passed on)
        └── UpstreamRejected       4xx (the provider refused the request itself: its status passed on)

An ``UpstreamError`` also says what the provider answered (``upstream_status``, None when no
answer came) for the audit event; its message never quotes the provider's own text beyond
the sanitised summary ``gateway.providers.errors`` builds.
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson


class GatewayError(Exception):
    """Base of every client-visible error: one HTTP status, one OpenAI error type and code."""

    status: ClassVar[int] = 500
    type: ClassVar[str] = "server_error"
    code: ClassVar[str] = "internal_error"
    retryable: ClassVar[bool | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code  # type: ignore[misc]  # an instance narrows its class's default code
        self.headers: dict[str, str] = dict(headers or {})
        self.extra: dict[str, Any] = dict(extra or {})

    def to_dict(self) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "code": self.code,
            "param": self.param,
        }
        error.update(self.extra)
        return {"error": error}

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict())

    def response_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.retryable is not None:
            headers.setdefault("x-should-retry", "true" if self.retryable else "false")
        return headers


class BadRequest(GatewayError):
    status = 400
    type = "invalid_request_error"
    code = "invalid_request"


class InvalidJSON(BadRequest):
    code = "invalid_json"


class SensitiveDataBlocked(BadRequest):
    code = "sensitive_data_blocked"


class PayloadTooLarge(BadRequest):
    status = 413
    code = "payload_too_large"


class HeadersTooLarge(BadRequest):
    status = 431
    code = "headers_too_large"


class RequestTimeout(BadRequest):
    """The client did not send its headers or body in time (slow or stalled client)."""

    status = 408
    code = "request_timeout"


class AuthenticationError(GatewayError):
    status = 401
    type = "authentication_error"
    code = "invalid_api_key"


class PermissionDenied(GatewayError):
    status = 403
    type = "permission_error"
    code = "permission_denied"


class ModelNotAllowed(PermissionDenied):
    code = "model_not_allowed"


class Denied(PermissionDenied):
    """A policy said no; ``reasons`` are shown to the caller."""

    code = "policy_denied"

    def __init__(self, reasons: list[str], **kwargs: Any) -> None:
        self.reasons = list(reasons) or ["denied by policy"]
        extra = kwargs.pop("extra", None) or {}
        extra.setdefault("reasons", self.reasons)
        super().__init__("Denied by policy: " + "; ".join(self.reasons), extra=extra, **kwargs)


class ApprovalMismatch(PermissionDenied):
    code = "approval_mismatch"


class NotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "not_found"


class ModelNotFound(NotFound):
    code = "model_not_found"


class Conflict(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "conflict"


class ApprovalPending(Conflict):
    type = "approval_pending"
    code = "approval_pending"
    retryable = False


class AlreadyDecided(Conflict):
    code = "already_decided"


class RateLimited(GatewayError):
    status = 429
    type = "rate_limit_error"
    code = "rate_limit_exceeded"


class BudgetExceeded(RateLimited):
    type = "budget_exceeded"
    code = "budget_exceeded"
    retryable = False


class LoopDetected(RateLimited):
    code = "loop_detected"
    retryable = False


class ServiceUnavailable(GatewayError):
    status = 503
    type = "service_unavailable"
    code = "service_unavailable"


class PolicyUnavailable(ServiceUnavailable):
    code = "policy_unavailable"


class LimitsUnavailable(ServiceUnavailable):
    code = "limits_unavailable"


class AuditUnavailable(ServiceUnavailable):
    code = "audit_unavailable"


class ApprovalsUnavailable(ServiceUnavailable):
    """The approval store cannot be reached: a call that needs an approval fails closed."""

    code = "approvals_unavailable"
    retryable = True


class Overloaded(ServiceUnavailable):
    """Load shedding: this worker is at its connection or in-flight cap; retry shortly."""

    code = "overloaded"
    retryable = True


class ShuttingDown(ServiceUnavailable):
    """The worker is draining and its grace ran out before this call did (``server.shutdown_grace_s``)."""

    code = "shutting_down"
    retryable = True


class UpstreamError(GatewayError):
    status = 502
    type = "upstream_error"
    code = "upstream_error"
    retryable = True

    def __init__(self, message: str, *, upstream_status: int | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.upstream_status = upstream_status


class UpstreamTimeout(UpstreamError):
    status = 504
    code = "upstream_timeout"


class UpstreamAuthFailed(UpstreamError):
    """The provider refused the gateway's own credentials (its 401/403/407): an operator's
    problem, never the caller's, so the caller gets a generic 502 and the log the details."""

    code = "upstream_auth_failed"
    retryable = False


class UpstreamRateLimited(UpstreamError):
    status = 429
    type = "rate_limit_error"
    code = "upstream_rate_limited"


class UpstreamRejected(UpstreamError):
    """The provider answered 4xx about the request itself; retrying elsewhere cannot help."""

    type = "invalid_request_error"
    code = "upstream_rejected"
    retryable = False

    def __init__(self, message: str, *, status: int, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.status = status  # type: ignore[misc]  # an instance narrows its class's default status


class InternalError(GatewayError):
    """Last resort for a bug: rendered as 500 without leaking details."""
