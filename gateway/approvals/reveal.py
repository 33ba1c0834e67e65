"""Who sees a held tool call's real values: the approval's reviewers, and nobody else.

The answer an approval holds has the caller's own redacted values put back (``redact_out``
restores ``<IBAN_CODE_1>`` for the caller who sent it), which is what the agent would run.
A reviewer must judge exactly that (whose account is the money going to?), but the record is
also listed to every reviewer and auditor, sent to webhooks and written to the audit log.
So the record's ``tool_calls`` (and reasons, which a policy may write from the arguments)
get the placeholders back from the request's redaction vault (``conceal``), and the real
tool calls are sealed beside the record with the approvals key; ``GET /admin/approvals/{id}``
opens them for a reviewer of one of the approval's groups.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

from gateway.approvals import rules
from gateway.approvals.model import Approval
from gateway.approvals.spec import ApprovalSpec
from gateway.call import Call
from gateway.errors import GatewayError
from gateway.keys import AdminPrincipal

_REDACTION_STATE = "redaction"  # gateway.redaction.redactor.STATE_KEY (not imported: no Presidio here)


def _walk(value: Any, conceal: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return conceal(value)
    if isinstance(value, dict):
        return {k: _walk(v, conceal) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, conceal) for v in value]
    return value


def conceal(call: Call, spec: ApprovalSpec) -> tuple[ApprovalSpec, list[dict[str, Any]] | None]:
    """``spec`` with placeholders in its tool calls and reasons, and the real tool calls when
    they differ (None when there is nothing of the caller's in them)."""
    state = call.state.get(_REDACTION_STATE)
    vault_conceal = getattr(getattr(state, "vault", None), "conceal", None)
    if vault_conceal is None or not spec.tool_calls:
        return spec, None
    concealed = [{**c, "arguments": _walk(c.get("arguments"), vault_conceal)} for c in spec.tool_calls]
    if concealed == spec.tool_calls:
        return spec, None
    reasons = [vault_conceal(r) for r in spec.reasons]
    return replace(spec, tool_calls=concealed, reasons=reasons), spec.tool_calls


def may_see_values(approval: Approval, reviewer: AdminPrincipal) -> bool:
    """A reviewer who may decide it (role approver, one of its groups) sees the real values."""
    if not reviewer.has_role("approver"):
        return False
    try:
        rules.may_review(approval, reviewer)
    except GatewayError:
        return False
    return True
