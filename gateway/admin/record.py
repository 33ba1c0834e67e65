"""Admin actions go to the audit log: who changed what, through which endpoint.

An admin change counts only if its audit event is stored. Each admin endpoint either records
the event before the change takes effect, or applies the change, records it, and undoes it
when the record is refused (``record_or_undo``). Either way a refused audit write answers 503
``audit_unavailable`` and leaves nothing changed. The audit log reaches here as an
``AuditRecorder`` (``None`` while it is off), handed to the API's routes by its component.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request

from gateway.errors import AuditUnavailable
from gateway.keys.store import AdminPrincipal
from gateway.recorder import AuditRecorder

log = logging.getLogger("wardgate.admin")


async def record_admin_action(
    audit: AuditRecorder | None, request: Request, who: AdminPrincipal, action: str, detail: dict[str, Any]
) -> None:
    """Durably record an admin action when the audit log is on (returns once it is stored).

    Raises ``AuditUnavailable`` when the event cannot be stored (whatever the store raised)."""
    if audit is None:
        return
    payload = {
        "action": action,
        "admin_key_id": who.key_id,
        "admin_user": who.user,
        "path": request.url.path,
        **detail,
    }
    try:
        await audit.record("admin", payload)
    except AuditUnavailable:
        raise
    except Exception as exc:  # any failure to store is the same answer: not recorded, not applied
        raise AuditUnavailable(
            f"The audit log could not record this admin action: {type(exc).__name__}"
        ) from exc


async def record_read(
    audit: AuditRecorder | None,
    request: Request,
    who: AdminPrincipal,
    rows: int | None,
    *,
    phase: str | None = None,
    required: bool = True,
) -> None:
    """Record that an admin or auditor read audit data (an ``audit_read`` event).

    Who (admin key id, user, roles), what (method, path and its query: the filter), and how
    many rows were answered; never the rows. Reads are fail-closed like admin actions: a read
    that cannot be recorded is refused (``AuditUnavailable``) before any data is answered. The
    payload nests the filter under ``filter`` so a read filtered on ``team=x`` is not itself
    filed under team x. ``required=False`` (reads of live operational state, not of the log,
    such as the limit counters) answers even when the record fails, with a warning: an audit
    outage must not blind the operators handling it.
    """
    if audit is None:
        return
    payload: dict[str, Any] = {
        "reader": {"admin_key_id": who.key_id, "admin_user": who.user, "roles": sorted(who.roles)},
        "method": request.method,
        "path": request.url.path,
        "filter": dict(request.query_params),
        "rows": rows,
    }
    if phase is not None:
        payload["phase"] = phase
    try:
        await audit.record("audit_read", payload)
    except Exception as exc:
        if not required:
            log.warning("read of %s by %s not recorded: %s", request.url.path, who.user, type(exc).__name__)
            return
        if isinstance(exc, AuditUnavailable):
            raise
        raise AuditUnavailable(f"The audit log could not record this read: {type(exc).__name__}") from exc


async def record_or_undo(
    audit: AuditRecorder | None,
    request: Request,
    who: AdminPrincipal,
    action: str,
    detail: dict[str, Any],
    undo: Callable[[], Awaitable[None]],
) -> None:
    """Record an admin change already applied; if the record is refused, undo the change and
    raise ``AuditUnavailable`` (503). If even the undo fails, the error says so, and the log
    names the change, so an operator can put it back by hand."""
    try:
        await record_admin_action(audit, request, who, action, detail)
    except AuditUnavailable as exc:
        try:
            await undo()
        except Exception as undo_exc:
            log.error(
                "admin action %s by %s could not be audited NOR undone (%s): %s",
                action,
                who.user,
                undo_exc,
                detail,
            )
            raise AuditUnavailable(
                f"{exc.message} The change could not be undone either ({type(undo_exc).__name__}): it is in effect "
                "without an audit record; set it back by hand."
            ) from exc
        log.warning("admin action %s by %s undone: the audit log refused it", action, who.user)
        raise AuditUnavailable(f"{exc.message} Nothing was changed.") from exc
