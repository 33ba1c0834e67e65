"""Who sees a held tool call's real values: the approval's reviewers, and nobody else.

The model only ever sees the caller's redacted values as placeholders, so a held
``transfer_funds`` says ``to: "<IBAN_CODE_1>"`` (or, where ``redact_out`` restores that type
into tool arguments, the caller's IBAN itself). A reviewer must see the real account to judge
the transfer, but the record is also listed to every reviewer and auditor, sent to webhooks
and written to the audit log. So the record's ``tool_calls`` (and reasons, which a policy may
write from the arguments) carry placeholders (``conceal``: restored values go back to their
placeholders), and the same tool calls with every placeholder of the caller's restored from
the request's redaction vault are sealed beside the record with the approvals key;
``GET /admin/approvals/{id}`` opens them for a reviewer of one of the approval's groups.
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
from gateway.keys.store import AdminPrincipal


def _walk(value: Any, conceal: Callable[[str], str]) -> Any:
    if isinstance(value, str):
        return conceal(value)
    if isinstance(value, dict):
        return {k: _walk(v, conceal) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, conceal) for v in value]
    return value


def conceal(call: Call, spec: ApprovalSpec) -> tuple[ApprovalSpec, list[dict[str, Any]] | None]:
    """``spec`` with placeholders in its tool calls and reasons, and the tool calls with the
    caller's real values when they differ (None when nothing of the caller's is in them)."""
    vault = call.vault
    if vault is None or not spec.tool_calls:
        return spec, None
    vault_conceal, vault_restore = vault.conceal, vault.restore
    concealed = [{**c, "arguments": _walk(c.get("arguments"), vault_conceal)} for c in spec.tool_calls]
    real = [
        {**c, "arguments": _walk(c.get("arguments"), lambda text: vault_restore(text)[0])} for c in concealed
    ]
    if real == concealed:
        return spec, None
    reasons = [vault_conceal(r) for r in spec.reasons]
    return replace(spec, tool_calls=concealed, reasons=reasons), real


def may_see_values(approval: Approval, reviewer: AdminPrincipal) -> bool:
    """A reviewer who may decide it (role approver, one of its groups) sees the real values."""
    if not reviewer.has_role("approver"):
        return False
    try:
        rules.may_review(approval, reviewer)
    except GatewayError:
        return False
    return True
