"""``/console/audit``: search the audit log, page through it, export it, check its chains.

- ``/console/audit``: the admin API's filters (``from``, ``to``, ``team``, ``key``, ``agent``,
  ``run``, ``decision``, ``model``, ``kind``, ``request_id``), its opaque cursor and order.
- ``/console/audit/export?format=jsonl|csv``: the same export as ``GET /admin/audit/export``
  (one snapshot, streamed), for the same filters.
- ``/console/audit/events/{id}``: one event with its hash.
- ``/console/audit/chains``: the chain registry (head, lease, closed or not, retention
  anchor) and the last verification run from the console; ``POST`` runs ``verify`` now
  (read-only, but a POST so that it is not fired by a link or a prefetch).

Roles as the admin API's: auditor or admin.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from starlette.responses import RedirectResponse, Response, StreamingResponse

from gateway.admin.record import record_read
from gateway.audit import export, query
from gateway.audit.schema import KIND_CHAIN_CLOSE
from gateway.audit.verify import verify
from gateway.console.pages.runs import store_of
from gateway.console.web import PREFIX, Page, PageRequest, PageRoute
from gateway.errors import BadRequest, NotFound

_LIST_PARAMS = query.FILTER_PARAMS | {"cursor", "order"}
_EXPORT_PARAMS = query.FILTER_PARAMS | {"format"}
_PAGE = 50


@dataclass(slots=True)
class _Verified:
    """The last ``verify`` run from the console (this process): when, by whom, the result."""

    at: float
    by: str
    ok: bool
    events: int
    shards: dict[str, dict[str, Any]]
    breaks: list[str]


_LAST: dict[int, _Verified] = {}


def _filled(page: PageRequest, allowed: frozenset[str]) -> dict[str, str]:
    params = {k: v for k, v in page.request.query_params.items() if v != ""}
    query.check_params(params, allowed)
    return params


async def search(page: PageRequest) -> Response:
    """Filtered, cursor-paged events."""
    store = store_of(page)
    params = _filled(page, _LIST_PARAMS)
    filters = query.parse_filters(params)
    desc = query.parse_order(params)
    after = query.decode_cursor(params.get("cursor"), desc)
    events = await store.query(filters, after=after, limit=_PAGE, desc=desc)
    await record_read(page.deps.audit(), page.request, page.user, len(events))
    more = None
    if len(events) == _PAGE:
        more = {**params, "cursor": query.encode_cursor(events[-1]["ts"], events[-1]["id"], desc)}
    plain = {k: v for k, v in params.items() if k != "cursor"}
    return page.render(
        "audit.html",
        events=events,
        params=params,
        more=more,
        first_page=plain if "cursor" in params else None,
        export_jsonl={**{k: v for k, v in plain.items() if k != "order"}, "format": "jsonl"},
        export_csv={**{k: v for k, v in plain.items() if k != "order"}, "format": "csv"},
        decisions=sorted(query.DECISIONS),
    )


async def export_events(page: PageRequest) -> Response:
    """The admin API's export, for the console's session."""
    store = store_of(page)
    params = _filled(page, _EXPORT_PARAMS)
    filters = query.parse_filters(params)
    fmt = params.get("format", "jsonl")
    if fmt == "jsonl":
        body, media = export.jsonl(store, filters), "application/x-ndjson"
    elif fmt == "csv":
        body, media = export.csv_lines(store, filters), "text/csv; charset=utf-8"
    else:
        raise BadRequest("'format' must be 'jsonl' or 'csv'.", param="format")
    await record_read(page.deps.audit(), page.request, page.user, None, phase="start")
    name = f"wardgate-audit.{fmt}"
    return StreamingResponse(
        body, media_type=media, headers={"content-disposition": f'attachment; filename="{name}"'}
    )


async def event(page: PageRequest) -> Response:
    """One event, with its hash."""
    store = store_of(page)
    event_id = query.text(page.request.path_params["event_id"], "id")
    found = await store.get(event_id)
    await record_read(page.deps.audit(), page.request, page.user, 0 if found is None else 1)
    if found is None:
        raise NotFound(f"No audit event {event_id!r}.", param="id")
    return page.render("audit_event.html", event=found)


def _state(kind: str | None, ts: float, now: float) -> str:
    if kind == KIND_CHAIN_CLOSE:
        return "closed"
    if kind is None:
        return "head event missing"
    return "live" if now - ts < 600 else "idle or dead (see verify)"


async def chains(page: PageRequest) -> Response:
    """The chain registry, retention anchors and the last console verification."""
    store = store_of(page)
    now = time.time()
    anchors = await store.anchors()
    rows = [
        {
            "shard": c.shard,
            "seq": c.head.seq,
            "hash": c.head.hash,
            "ts": c.ts,
            "state": _state(c.last_kind, c.ts, now),
            "anchor": anchors.get(c.shard),
        }
        for c in sorted(await store.chains(), key=lambda c: -c.ts)
    ]
    recorder = page.deps.audit()
    anchored_at = getattr(recorder, "anchored_at", None)
    return page.render(
        "audit_chains.html", chains=rows, last=_LAST.get(id(store)), anchored_at=anchored_at, now=now
    )


def _said(b: Any) -> str:
    return f"{b.shard} seq {b.seq}: {b.problem}"


async def run_verify(page: PageRequest) -> Response:
    """Verify every chain now and keep the result for the chains page."""
    store = store_of(page)
    report = await verify(store)
    _LAST[id(store)] = _Verified(
        at=time.time(),
        by=page.user.user,
        ok=report.ok,
        events=report.events,
        shards={
            s.shard: {
                "events": s.events,
                "ok": not s.breaks,
                "unwitnessed_from": s.unwitnessed_from,
                "breaks": [_said(b) for b in s.breaks][:5],
            }
            for s in report.shards
        },
        breaks=[_said(b) for b in report.breaks][:20],
    )
    return RedirectResponse(f"{PREFIX}/audit/chains", status_code=303)


PAGE = Page(
    name="audit",
    title="Audit",
    roles=("auditor",),
    routes=(
        PageRoute("/audit", search, roles=("auditor",)),
        PageRoute("/audit/export", export_events, roles=("auditor",)),
        PageRoute("/audit/chains", chains, roles=("auditor",)),
        PageRoute("/audit/chains/verify", run_verify, roles=("auditor",), methods=("POST",)),
        PageRoute("/audit/events/{event_id}", event, roles=("auditor",)),
    ),
)
