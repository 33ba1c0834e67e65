"""HTTP API of the approval queue.

Reviewers (admin keys with role ``approver``; ``auditor`` may read):

    GET  /admin/approvals?status=&agent=&run=&team=&cursor=&limit=   newest first, paged
    GET  /admin/approvals/stream                                     SSE: pending ones, then every change
    GET  /admin/approvals/{id}
    POST /admin/approvals/{id}/approve   {"comment": "..."}
    POST /admin/approvals/{id}/deny      {"comment": "..."}

Callers (the agent key that caused the approval, for ``defer`` polling):

    GET    /v1/approvals/{id}     status and outcome
    DELETE /v1/approvals/{id}     withdraw a pending approval

Errors are ``GatewayError``s: 404 unknown id, 409 ``already_decided`` / ``approval_expired``,
403 wrong group or four-eyes. ``/v1/approvals`` must be mounted before the app's catch-all.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway.admin.auth import require_admin
from gateway.admin.body import read_admin_body
from gateway.approvals.model import Approval, Status, valid_id
from gateway.approvals.reveal import may_see_values
from gateway.approvals.service import ApprovalService
from gateway.approvals.store import ListQuery
from gateway.errors import AuthenticationError, BadRequest, NotFound, ServiceUnavailable
from gateway.http.routes import bind, json_response
from gateway.keys.bearer import bearer_token
from gateway.registry import Provider

_MAX_COMMENT = 4000
_MAX_LIMIT = 200
_KEEPALIVE_S = 15.0
_SNAPSHOT = 500


def _service(get: Provider[ApprovalService]) -> ApprovalService:
    service = get()
    if service is None:
        raise ServiceUnavailable(
            "The approval queue is not enabled on this gateway.", code="approvals_disabled"
        )
    return service


def _id(request: Request) -> str:
    approval_id = request.path_params["approval_id"]
    if not valid_id(approval_id):
        raise NotFound(f"No approval with id '{approval_id}'.", code="approval_not_found")
    return approval_id


def _query(request: Request) -> ListQuery:
    q = request.query_params
    status = q.get("status") or None
    if status is not None and status not in {s.value for s in Status}:
        raise BadRequest(f"status must be one of {[s.value for s in Status]}.", param="status")
    try:
        limit = int(q.get("limit") or 50)
    except ValueError as exc:
        raise BadRequest("limit must be an integer.", param="limit") from exc
    if not 1 <= limit <= _MAX_LIMIT:
        raise BadRequest(f"limit must be between 1 and {_MAX_LIMIT}.", param="limit")
    return ListQuery(
        status=status,
        agent=q.get("agent") or None,
        run=q.get("run") or None,
        team=q.get("team") or None,
        cursor=q.get("cursor") or None,
        limit=limit,
    )


async def list_approvals(request: Request, get: Provider[ApprovalService]) -> Response:
    """List approvals, newest first (filters: status, agent, run, team; paged by cursor)."""
    require_admin(request, "approver", "auditor")
    page = await _service(get).list(_query(request))
    return json_response(
        {
            "object": "list",
            "data": [a.public() for a in page.items],
            "next_cursor": page.next_cursor,
            "has_more": page.next_cursor is not None,
        }
    )


async def get_approval(request: Request, get: Provider[ApprovalService]) -> Response:
    """One approval: who, what, why, and its outcome. A reviewer of one of its groups sees the
    real values of the held tool calls' arguments (``"values": "real"``); everyone else, and
    every list, sees the caller's values as placeholders (``"values": "placeholders"``)."""
    reviewer = require_admin(request, "approver", "auditor")
    service = _service(get)
    approval = await service.require(_id(request))
    doc = approval.public()
    if approval.has_values:
        doc["values"] = "placeholders"
        if may_see_values(approval, reviewer):
            real = await service.real_tool_calls(approval)
            if real is not None:
                doc["tool_calls"] = real
                doc["values"] = "real"
    return json_response(doc, headers={"cache-control": "no-store"})


async def _comment(request: Request) -> str | None:
    raw = await read_admin_body(request)
    if not raw.strip():
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest('The body must be JSON: {"comment": "..."}.', code="invalid_json") from exc
    comment = doc.get("comment") if isinstance(doc, dict) else None
    if comment is not None and not isinstance(comment, str):
        raise BadRequest("comment must be a string.", param="comment")
    if comment is not None and len(comment) > _MAX_COMMENT:
        raise BadRequest(f"comment is limited to {_MAX_COMMENT} characters.", param="comment")
    return comment


async def approve(request: Request, get: Provider[ApprovalService]) -> Response:
    """Approve a pending approval (four-eyes: never one's own; needs the approver group)."""
    reviewer = require_admin(request, "approver")
    comment = await _comment(request)
    return json_response((await _service(get).approve(_id(request), reviewer, comment)).public())


async def deny(request: Request, get: Provider[ApprovalService]) -> Response:
    """Deny a pending approval; the comment is what the agent reads."""
    reviewer = require_admin(request, "approver")
    comment = await _comment(request)
    return json_response((await _service(get).deny(_id(request), reviewer, comment)).public())


def _sse(event: str, approval: Approval) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(approval.public()) + b"\n\n"


async def stream(request: Request, get: Provider[ApprovalService]) -> Response:
    """Server-sent events: every pending approval, then each new or changed one as it happens."""
    require_admin(request, "approver", "auditor")
    service = _service(get)
    queue = service.subscribe()

    async def events() -> AsyncIterator[bytes]:
        try:
            page = await service.list(ListQuery(status="pending", limit=_SNAPSHOT))
            for approval in reversed(page.items):
                yield _sse("approval.snapshot", approval)
            yield b": end of snapshot\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), _KEEPALIVE_S)
                except TimeoutError:
                    yield b": keepalive\n\n"
                    continue
                if item is None:
                    return
                kind, approval = item
                yield _sse(f"approval.{kind}", approval)
        finally:
            service.unsubscribe(queue)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"cache-control": "no-cache", "x-accel-buffering": "no"},
    )


def _caller_approval_key(request: Request) -> str:
    token = bearer_token(request.headers.get("authorization"))
    principal = request.app.state.ctx.keys.authenticate(token) if token else None
    if principal is None:
        raise AuthenticationError("Invalid or missing API key.")
    return principal.key_id


async def caller_get(request: Request, get: Provider[ApprovalService]) -> Response:
    """The status of an approval, for the agent key that caused it (defer polling)."""
    key_id = _caller_approval_key(request)
    approval = await _service(get).get(_id(request))
    if approval is None or approval.principal.get("key_id") != key_id:
        raise NotFound(
            f"No approval with id '{request.path_params['approval_id']}'.", code="approval_not_found"
        )
    return json_response(approval.caller_view())


async def caller_cancel(request: Request, get: Provider[ApprovalService]) -> Response:
    """Withdraw a pending approval this key caused (the agent no longer needs the action)."""
    key_id = _caller_approval_key(request)
    service = _service(get)
    approval = await service.get(_id(request))
    if approval is None or approval.principal.get("key_id") != key_id:
        raise NotFound(
            f"No approval with id '{request.path_params['approval_id']}'.", code="approval_not_found"
        )
    return json_response((await service.cancel(approval.id, key_id)).caller_view())


_APPROVAL = {
    "type": "object",
    "description": "An approval record (Approval.public(); never the held answer).",
    "properties": {
        "object": {"const": "approval"},
        "id": {"type": "string", "pattern": "^apr_[0-9a-f]+$"},
        "status": {"enum": [s.value for s in Status]},
        "phase": {"enum": ["request", "response"]},
        "mode": {"enum": ["hold", "defer"]},
        "reasons": {"type": "array"},
        "tool_calls": {"type": "array"},
        "groups": {"type": "array"},
        "values": {
            "enum": ["real", "placeholders"],
            "description": "GET one: whether tool_calls show the caller's real values",
        },
        "approvals_required": {"type": "integer"},
        "votes": {"type": "array"},
        "decided_by": {"type": ["string", "null"]},
        "comment": {"type": ["string", "null"]},
    },
    "required": ["id", "status"],
}
_COMMENT_BODY = {
    "required": False,
    "content": {
        "application/json": {
            "schema": {
                "type": "object",
                "properties": {"comment": {"type": "string", "maxLength": _MAX_COMMENT}},
            }
        }
    },
}
_ID = {"name": "approval_id", "in": "path", "required": True, "schema": {"type": "string"}}
_QUERY = [
    {"name": n, "in": "query", "required": False, "schema": schema}
    for n, schema in (
        ("status", {"enum": [s.value for s in Status]}),
        ("agent", {"type": "string"}),
        ("run", {"type": "string"}),
        ("team", {"type": "string"}),
        ("cursor", {"type": "string"}),
        ("limit", {"type": "integer", "minimum": 1, "maximum": _MAX_LIMIT}),
    )
]


def _responses(ok: dict[str, Any], *codes: str) -> dict[str, Any]:
    text = {
        "400": "Bad request",
        "401": "Missing or invalid key",
        "403": "Role, group or four-eyes refusal",
        "404": "Unknown approval",
        "409": "Already decided, expired, or already voted",
        "503": "Approvals are disabled",
    }
    return {
        "200": {"description": "OK", "content": {"application/json": {"schema": ok}}},
        **{c: {"description": text[c]} for c in codes},
    }


def openapi_paths() -> dict[str, dict[str, Any]]:
    """OpenAPI operations of these routes, for the app's ``/openapi.json`` to merge in."""
    page = {
        "type": "object",
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": _APPROVAL},
            "next_cursor": {"type": ["string", "null"]},
            "has_more": {"type": "boolean"},
        },
    }
    decide = {
        "parameters": [_ID],
        "requestBody": _COMMENT_BODY,
        "responses": _responses(_APPROVAL, "400", "401", "403", "404", "409", "503"),
    }
    return {
        "/admin/approvals": {
            "get": {"parameters": _QUERY, "responses": _responses(page, "400", "401", "403", "503")}
        },
        "/admin/approvals/stream": {
            "get": {
                "responses": {
                    "200": {
                        "description": "text/event-stream: approval.snapshot, approval.created, approval.updated"
                    },
                    "401": {"description": "Missing or invalid key"},
                    "403": {"description": "Role refusal"},
                }
            }
        },
        "/admin/approvals/{approval_id}": {
            "get": {"parameters": [_ID], "responses": _responses(_APPROVAL, "401", "403", "404", "503")}
        },
        "/admin/approvals/{approval_id}/approve": {"post": decide},
        "/admin/approvals/{approval_id}/deny": {"post": decide},
        "/v1/approvals/{approval_id}": {
            "get": {"parameters": [_ID], "responses": _responses({"type": "object"}, "401", "404", "503")},
            "delete": {
                "parameters": [_ID],
                "responses": _responses({"type": "object"}, "401", "404", "409", "503"),
            },
        },
    }


def routes(service: Provider[ApprovalService]) -> list[BaseRoute]:
    """The routes, reaching ``service()`` (``None`` while the queue is off) per request."""
    return [
        Route("/admin/approvals", bind(list_approvals, service), methods=["GET"]),
        Route("/admin/approvals/stream", bind(stream, service), methods=["GET"]),
        Route("/admin/approvals/{approval_id}", bind(get_approval, service), methods=["GET"]),
        Route("/admin/approvals/{approval_id}/approve", bind(approve, service), methods=["POST"]),
        Route("/admin/approvals/{approval_id}/deny", bind(deny, service), methods=["POST"]),
        Route("/v1/approvals/{approval_id}", bind(caller_get, service), methods=["GET"]),
        Route("/v1/approvals/{approval_id}", bind(caller_cancel, service), methods=["DELETE"]),
    ]
