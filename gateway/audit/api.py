"""Read-only admin API over the audit store (roles ``auditor`` or ``admin``).

    GET /admin/audit                 filtered, cursor-paged list (newest first by default)
    GET /admin/audit/export          the same filters, streamed as JSONL or CSV
    GET /admin/audit/{id}            one event, with its hash
    GET /admin/runs/{run_id}         the run timeline, oldest first
    POST /admin/audit/verify         run ``verify`` (chain or all, anchors, key): verify_api.py

Nothing here changes the log: an auditor key can read everything and change nothing. Every
read is itself recorded (an ``audit_read`` event: who, which path and filter, how many rows;
never the rows), before the answer is sent; an export records its start before the first
byte and its row count after the last. The settled-spend
report over the same store (``GET /admin/spend/report``) is served next to ``/admin/spend``
by the limits API, through ``spend.spend_report``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from gateway.admin.auth import require_admin
from gateway.admin.record import record_read
from gateway.audit import export, query
from gateway.audit.store.base import AuditStore, Filters
from gateway.audit.timeline import capture_ids, timeline
from gateway.audit.verify_api import Verifier, verify_chains
from gateway.errors import BadRequest, NotFound, ServiceUnavailable
from gateway.http.routes import bind, json_response
from gateway.keys.store import AdminPrincipal
from gateway.recorder import RecorderProvider
from gateway.registry import Provider

_LIST_PARAMS = query.FILTER_PARAMS | {"cursor", "limit", "order"}
_EXPORT_PARAMS = query.FILTER_PARAMS | {"format", "chain", "since_seq"}
_RUN_PARAMS = frozenset({"cursor", "limit"})
_MAX_LIMIT = 1000


class Deps:
    """The store to read and the recorder every read is recorded in (each ``None`` while off)."""

    __slots__ = ("recorder", "store")

    def __init__(self, store: Provider[AuditStore], recorder: RecorderProvider) -> None:
        self.store = store
        self.recorder = recorder


def _store(request: Request, deps: Deps) -> tuple[AuditStore, AdminPrincipal]:
    who = require_admin(request, "auditor")
    found = deps.store()
    if found is None:
        raise ServiceUnavailable("The audit log is disabled on this gateway.")
    return found, who


def _page(events: list[dict[str, Any]], limit: int, desc: bool) -> str | None:
    if len(events) < limit:
        return None
    return query.encode_cursor(events[-1]["ts"], events[-1]["id"], desc)


async def list_events(request: Request, deps: Deps) -> Response:
    store, who = _store(request, deps)
    params = request.query_params
    query.check_params(params, _LIST_PARAMS)
    filters = query.parse_filters(params)
    limit = query.parse_int(params, "limit", 100, 1, _MAX_LIMIT)
    desc = query.parse_order(params)
    after = query.decode_cursor(params.get("cursor"), desc)
    events = await store.query(filters, after=after, limit=limit, desc=desc)
    await record_read(deps.recorder(), request, who, len(events))
    cursor = _page(events, limit, desc)
    return json_response(
        {"object": "list", "data": events, "next_cursor": cursor, "has_more": cursor is not None}
    )


async def get_event(request: Request, deps: Deps) -> Response:
    store, who = _store(request, deps)
    event = await store.get(query.text(request.path_params["event_id"], "id"))
    await record_read(deps.recorder(), request, who, 0 if event is None else 1)
    if event is None:
        raise NotFound(f"No audit event {request.path_params['event_id']!r}.", param="id")
    return json_response(event)


async def _recorded(
    body: AsyncIterator[bytes], request: Request, deps: Deps, who: AdminPrincipal, count: list[int]
) -> AsyncIterator[bytes]:
    """The export's body, then its row count recorded (the start was recorded before it)."""
    async for chunk in body:
        yield chunk
    await record_read(deps.recorder(), request, who, count[0], phase="end")


async def export_events(request: Request, deps: Deps) -> Response:
    store, who = _store(request, deps)
    params = request.query_params
    query.check_params(params, _EXPORT_PARAMS)
    filters = query.parse_filters(params)
    chain = query.text(params["chain"], "chain") if "chain" in params else None
    since_seq = query.parse_int(params, "since_seq", 1, 1, 2**62) if "since_seq" in params else None
    if since_seq is not None and chain is None:
        raise BadRequest("'since_seq' needs 'chain' (each chain has its own seq).", param="since_seq")
    fmt = params.get("format", "jsonl")
    count = [0]
    if fmt == "jsonl":
        body = export.jsonl(store, filters, chain=chain, since_seq=since_seq, count=count)
        media = "application/x-ndjson"
    elif fmt == "csv":
        body = export.csv_lines(store, filters, chain=chain, since_seq=since_seq, count=count)
        media = "text/csv; charset=utf-8"
    else:
        raise BadRequest("'format' must be 'jsonl' or 'csv'.", param="format")
    if not store.queryable:
        await store.query(filters, limit=1)  # raises the backend's "cannot be read" error up front
    await record_read(deps.recorder(), request, who, None, phase="start")
    name = f"wardgate-audit.{fmt}"
    return StreamingResponse(
        _recorded(body, request, deps, who, count),
        media_type=media,
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


async def run_timeline(request: Request, deps: Deps) -> Response:
    store, who = _store(request, deps)
    params = request.query_params
    query.check_params(params, _RUN_PARAMS)
    run_id = query.text(request.path_params["run_id"], "run_id")
    limit = query.parse_int(params, "limit", 1000, 1, 10_000)
    after = query.decode_cursor(params.get("cursor"), False)
    filters = Filters(run_id=run_id)
    events = await store.query(filters, after=after, limit=limit, desc=False)
    if not events and after is None:
        raise NotFound(f"No audit events for run {run_id!r}.", param="run_id")
    totals = await store.spend("run", filters)
    captures = await store.captures(capture_ids(events))
    await record_read(deps.recorder(), request, who, len(events))
    return json_response(timeline(run_id, events, totals, _page(events, limit, False), captures))


def routes(store: Provider[AuditStore], recorder: RecorderProvider, verifier: Verifier) -> list[BaseRoute]:
    """The routes, reading ``store()`` and ``recorder()`` (``None`` while the audit log is
    off) per request."""
    deps = Deps(store, recorder)
    return [
        Route("/admin/audit/verify", bind(verify_chains, (verifier, recorder)), methods=["POST"]),
        Route("/admin/audit", bind(list_events, deps), methods=["GET"]),
        Route("/admin/audit/export", bind(export_events, deps), methods=["GET"]),
        Route("/admin/audit/{event_id}", bind(get_event, deps), methods=["GET"]),
        Route("/admin/runs/{run_id}", bind(run_timeline, deps), methods=["GET"]),
    ]
