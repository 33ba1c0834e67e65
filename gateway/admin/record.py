"""Admin actions go to the audit log: who changed what, through which endpoint."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from gateway.keys import AdminPrincipal


async def record_admin_action(request: Request, who: AdminPrincipal, action: str, detail: dict[str, Any]) -> None:
    """Durably record an admin action when the audit log is on (returns once it is stored)."""
    audit = request.app.state.ctx.services.get("audit")
    if audit is None:
        return
    payload = {"action": action, "admin_key_id": who.key_id, "admin_user": who.user,
               "path": request.url.path, **detail}
    await audit.record("admin", payload)
