"""``/console/approvals``: the approvals inbox (live), one approval's detail, approve / deny.

    GET  /console/approvals                   the inbox: pending approvals, filters, live (SSE)
    GET  /console/approvals/rows              the inbox's rows (what the live refresh fetches)
    GET  /console/approvals/events            SSE: "changed" whenever an approval is created or changes
    GET  /console/approvals/{id}              detail: tool calls (real values for its reviewers),
                                              reasons, votes, time left, the run so far
    POST /console/approvals/{id}/approve      comment; four-eyes and groups as the admin API
    POST /console/approvals/{id}/deny         comment (what the agent reads)

Roles are the admin API's for the same operations (``GET /admin/approvals``: approver or
auditor; approve / deny: approver), and decisions go through the same ``ApprovalService``
calls, so groups, four-eyes, the audit record first, and races behave exactly as there. The
live stream carries only ids; the rows are always rendered (and escaped) by the server.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.responses import RedirectResponse, Response, StreamingResponse

from gateway.approvals.model import valid_id
from gateway.approvals.reveal import may_see_values
from gateway.approvals.service import ApprovalService
from gateway.console.pages.approvals_view import INBOX_ROWS, InboxFilters, run_context, standing
from gateway.console.web import PREFIX, SESSION_COOKIE, Page, PageRequest, PageRoute
from gateway.errors import BadRequest, NotFound, ServiceUnavailable

READ = ("approver", "auditor")
DECIDE = ("approver",)
_MAX_COMMENT = 4000
_KEEPALIVE_S = 15.0


def _service(page: PageRequest) -> ApprovalService:
    service = page.deps.approvals()
    if service is None:
        raise ServiceUnavailable(
            "The approval queue is not enabled on this gateway.", code="approvals_disabled"
        )
    return service


def _approval_id(page: PageRequest) -> str:
    approval_id = page.request.path_params["approval_id"]
    if not valid_id(approval_id):
        raise NotFound("There is no approval with this id.", code="approval_not_found")
    return str(approval_id)


async def _rows(page: PageRequest, filters: InboxFilters) -> dict[str, Any]:
    service = _service(page)
    now = service.now()
    view = page.deps.pending()
    records = await view.approvals() if view is not None else await service.pending()
    pending = [a for a in records if filters.matches(a)]
    shown = pending[:INBOX_ROWS]
    return {
        "rows": [(a, standing(a, page.user, now)) for a in shown],
        "total": len(pending),
        "now": now,
        "filters": filters,
    }


async def inbox(page: PageRequest) -> Response:
    """The inbox: pending approvals, newest first, live."""
    filters = InboxFilters.parse(page.request.query_params)
    return page.render("approvals.html", **await _rows(page, filters))


async def rows(page: PageRequest) -> Response:
    """The inbox's rows, for the live refresh."""
    filters = InboxFilters.parse(page.request.query_params)
    return page.render("approvals_rows.html", **await _rows(page, filters))


async def events(page: PageRequest) -> Response:
    """Server-sent events: ``changed`` (data: the approval's id and status) on every change.

    The stream ends when the session does (checked at each keep-alive) or the queue closes."""
    service = _service(page)
    manager = page.deps.sessions()
    cookie = page.request.cookies.get(SESSION_COOKIE)
    queue = service.subscribe()

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 1000\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), _KEEPALIVE_S)
                except TimeoutError:
                    if manager is None or await manager.load(cookie, touch=False) is None:
                        return
                    yield b": keepalive\n\n"
                    continue
                if item is None:
                    return
                _, approval = item
                data = orjson.dumps({"id": approval.id, "status": approval.status.value})
                yield b"event: changed\ndata: " + data + b"\n\n"
        finally:
            service.unsubscribe(queue)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def detail(page: PageRequest) -> Response:
    """One approval with everything a reviewer needs to decide."""
    service = _service(page)
    approval = await service.get(_approval_id(page))
    if approval is None:
        raise NotFound("There is no approval with this id.", code="approval_not_found")
    tool_calls, values = approval.tool_calls, "placeholders" if approval.has_values else "as sent"
    if approval.has_values and may_see_values(approval, page.user):
        real = await service.real_tool_calls(approval)
        if real is not None:
            tool_calls, values = real, "real"
    now = service.now()
    return page.render(
        "approvals_detail.html",
        a=approval,
        tool_calls=tool_calls,
        values=values,
        can=standing(approval, page.user, now),
        context=await run_context(page.deps.audit_store(), approval, page.user),
        now=now,
        decided=page.request.query_params.get("decided"),
    )


def _comment(page: PageRequest) -> str | None:
    comment = page.form.get("comment", "").strip()
    if len(comment) > _MAX_COMMENT:
        raise BadRequest(f"A comment is limited to {_MAX_COMMENT} characters.", param="comment")
    return comment or None


async def approve(page: PageRequest) -> Response:
    """Approve (a vote, when several reviewers are needed)."""
    approval_id = _approval_id(page)
    await _service(page).approve(approval_id, page.user, _comment(page))
    return RedirectResponse(f"{PREFIX}/approvals/{approval_id}?decided=approved", status_code=303)


async def deny(page: PageRequest) -> Response:
    """Deny, with the comment the agent reads."""
    approval_id = _approval_id(page)
    await _service(page).deny(approval_id, page.user, _comment(page))
    return RedirectResponse(f"{PREFIX}/approvals/{approval_id}?decided=denied", status_code=303)


PAGE = Page(
    name="approvals",
    title="Approvals",
    roles=READ,
    routes=(
        PageRoute("/approvals", inbox, READ),
        PageRoute("/approvals/rows", rows, READ),
        PageRoute("/approvals/events", events, READ),
        PageRoute("/approvals/{approval_id}", detail, READ),
        PageRoute("/approvals/{approval_id}/approve", approve, DECIDE, ("POST",)),
        PageRoute("/approvals/{approval_id}/deny", deny, DECIDE, ("POST",)),
    ),
)
