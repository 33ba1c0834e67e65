"""What a decision does to a call: deny, approval hand-off, model route, token cap, redaction.

deny               → ``Denied`` (403 policy_denied, every reason shown to the caller)
engine failure     → ``PolicyUnavailable`` (503), or nothing when failing open
require_approval   → ``call.approval_ask`` for the approval stage; without one
                     configured, a deny with "approval required: <reason>"
route.model        → ``call.body["model"]`` (``call.model`` keeps what the caller asked
                     for; ``call.routed_model`` says where it went)
limits.max_tokens  → caps max_tokens / max_completion_tokens / max_output_tokens
redact             → ``call.policy_redact`` for the redaction stage
cache              → ``call.cache_directive`` for the response cache
"""

from __future__ import annotations

from typing import Any

from gateway.call import Call, Endpoint
from gateway.callstate import ApprovalAsk, CacheDirective
from gateway.errors import Denied, GatewayError, PolicyUnavailable
from gateway.policy.decision import PolicyDecision
from gateway.policy.service import PolicyService, Verdict

#: Token-limit fields per endpoint; the first is added when the caller set none.
_TOKEN_FIELDS = {
    Endpoint.CHAT: ("max_completion_tokens", "max_tokens"),
    Endpoint.RESPONSES: ("max_output_tokens",),
    Endpoint.EMBEDDINGS: (),
}


def resolve(service: PolicyService, verdict: Verdict) -> tuple[str, list[str]]:
    """The call's outcome (``allow``/``deny``/``approval``/``error``) and its reasons."""
    decision = verdict.decision
    if decision is None:
        if verdict.fail_open:
            return "allow", [f"policy engine unavailable, failing open: {verdict.error}"]
        return "error", [f"policy engine unavailable: {verdict.error}"]
    if decision.deny:
        return "deny", list(decision.deny)
    if decision.require_approval:
        reasons = [str(item["reason"]) for item in decision.require_approval]
        if service.approvals_enabled:
            return "approval", reasons
        return "deny", [f"approval required: {r}" for r in reasons]
    return "allow", []


def refusal(outcome: str, reasons: list[str], verdict: Verdict) -> GatewayError | None:
    """The error that stops the call, or None when it may go on."""
    if outcome == "error":
        return PolicyUnavailable(
            "The policy engine could not decide this call, so it was refused. Try again later.",
            extra={"policy_revision": verdict.revision},
        )
    if outcome == "deny":
        return Denied(reasons, extra={"policy_revision": verdict.revision})
    return None


def hand_off_approval(call: Call, verdict: Verdict) -> None:
    decision = verdict.decision
    if decision is None or not decision.require_approval:
        return
    call.approval_ask = ApprovalAsk(
        verdict.phase,
        tuple(dict(item) for item in decision.require_approval),
        decision.to_dict(),
        verdict.revision,
    )


def apply_request_effects(call: Call, decision: PolicyDecision) -> None:
    model = decision.model
    if model and model != call.body.get("model"):
        call.body["model"] = model
        call.routed_model = model
    cap = decision.max_tokens
    if cap is not None:
        cap_max_tokens(call, cap)
    if decision.redact:
        call.policy_redact = {**(call.policy_redact or {}), **decision.redact}
    cache = decision.cache
    if cache:
        ttl = cache.get("ttl_s")
        threshold = cache.get("threshold")
        call.cache_directive = CacheDirective(
            str(cache["mode"]),
            float(ttl) if ttl is not None else None,
            str(cache.get("scope", "team")),
            float(threshold) if threshold is not None else None,
        )


def cap_max_tokens(call: Call, cap: int) -> None:
    """Lower every token-limit field above ``cap``; set one when the caller set none."""
    fields = _TOKEN_FIELDS.get(call.endpoint, ())
    if not fields:
        return
    body = call.body
    present = [f for f in fields if body.get(f) is not None]
    for name in present:
        value: Any = body[name]
        if isinstance(value, int | float) and not isinstance(value, bool) and value > cap:
            body[name] = cap
    if not present:
        body[fields[0]] = cap
