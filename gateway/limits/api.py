"""Admin HTTP API of the limits component.

    GET /admin/spend?scope=team&id=acme              one scope (auditor or admin)
    GET /admin/spend?scope=agent&team=acme           every recently active scope of a kind
    GET /admin/spend/report?group_by=team&window=7d  settled spend from the audit log (auditor or admin)
    PUT /admin/budgets/{scope}/{id}[?team=acme]      {"day": 5, "month": null, "total": 100} (USD; admin)
    PUT /admin/limits/{scope}/{id}[?team=acme]       {"requests_per_minute": 60, "tokens_per_minute": null,
                                                      "max_concurrent_requests": 8,
                                                      "run_max_calls": 200, ...} (admin; run_* on teams)
    GET /admin/reservations?scope=key&id=k1          the scope's reservations in flight (auditor or admin)
    DELETE /admin/reservations/{rid}?scope=key&id=k1 release one (admin): its hold is dropped unbooked

Every change is audited (kind ``admin``) and applied only if the audit event is stored: a
refused record puts the previous values back and answers 503 ``audit_unavailable``.

Scopes: key, team, user, agent, run, model. Every scope but ``key`` and ``team`` is counted
within a team (see store.py), so it is named with ``?team=``. A PUT replaces its section of
the scope's runtime override: omitted fields fall back to limits.yaml / keys.yaml.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from gateway.admin.auth import require_admin
from gateway.admin.body import read_admin_body
from gateway.admin.record import record_or_undo, record_read
from gateway.errors import InvalidJSON, NotFound, ServiceUnavailable
from gateway.http.routes import bind, json_response
from gateway.limits.admin import LimitsAdmin, ReservationsAdmin
from gateway.recorder import RecorderProvider
from gateway.registry import Provider


@dataclass(frozen=True, slots=True)
class Deps:
    """What the handlers use, handed over by the limits component."""

    #: The limits admin while limits are on.
    admin: Provider[LimitsAdmin]
    #: The audit log every change is recorded in (``None``: off).
    audit: RecorderProvider
    #: The settled-spend report of the audit log for the query parameters (``None``: log off).
    spend_report: Callable[[Mapping[str, str]], Awaitable[dict[str, Any] | None]]


def _admin(deps: Deps) -> LimitsAdmin:
    admin = deps.admin()
    if admin is None:
        raise NotFound("Limits and budgets are disabled on this gateway (limits.enabled = false).")
    return admin


async def _body(request: Request) -> Any:
    raw = await read_admin_body(request)
    try:
        return orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError as exc:
        raise InvalidJSON(f"Request body is not valid JSON: {exc}") from exc


async def get_spend(request: Request, deps: Deps) -> Response:
    """Live spend counters; the read is recorded in the audit log (who, filter, row count)."""
    who = require_admin(request, "auditor")
    admin = _admin(deps)
    q = request.query_params
    scope = q.get("scope", "team")
    if q.get("id"):
        one = await admin.spend(scope, q["id"], q.get("team"))
        await record_read(deps.audit(), request, who, 1, required=False)
        return json_response(one)
    rows = await admin.list(scope, q.get("team"))
    await record_read(deps.audit(), request, who, len(rows), required=False)
    return json_response({"object": "list", "data": rows})


async def spend_report(request: Request, deps: Deps) -> Response:
    """Settled spend grouped by team, key, agent, model or run, from the audit log."""
    who = require_admin(request, "auditor")
    report = await deps.spend_report(request.query_params)
    if report is None:
        raise ServiceUnavailable("The audit log is disabled on this gateway.")
    await record_read(deps.audit(), request, who, len(report["data"]))
    return json_response(report)


async def put_budgets(request: Request, deps: Deps) -> Response:
    return await _put_overrides(request, deps, "budgets")


async def put_limits(request: Request, deps: Deps) -> Response:
    return await _put_overrides(request, deps, "limits")


async def _put_overrides(request: Request, deps: Deps, kind: str) -> Response:
    """Set a scope's ``budgets`` or ``limits`` override; applied only if its audit record is stored."""
    who = require_admin(request, "admin")
    p, team, body = request.path_params, request.query_params.get("team"), await _body(request)
    admin = _admin(deps)
    setter = admin.set_budgets if kind == "budgets" else admin.set_limits
    change = await setter(p["scope"], p["id"], team, body)
    await record_or_undo(
        deps.audit(),
        request,
        who,
        f"{kind}.set",
        {
            "scope": p["scope"],
            "id": change.ident,
            "team": change.team,
            kind: body,
            "previous": change.previous,
        },
        change.undo,
    )
    return json_response(await admin.spend(p["scope"], change.ident, change.team))


async def get_reservations(request: Request, deps: Deps) -> Response:
    """The reservations in flight on one scope (auditor or admin)."""
    require_admin(request, "auditor")
    q = request.query_params
    return json_response(
        await ReservationsAdmin(_admin(deps)).list(q.get("scope", "key"), q.get("id"), q.get("team"))
    )


async def delete_reservation(request: Request, deps: Deps) -> Response:
    """Release one reservation's hold on a scope (admin; audited, undone if the audit refuses)."""
    who = require_admin(request, "admin")
    q, rid = request.query_params, request.path_params["rid"]
    scope = q.get("scope", "key")
    change = await ReservationsAdmin(_admin(deps)).release(scope, q.get("id"), q.get("team"), rid)
    await record_or_undo(
        deps.audit(),
        request,
        who,
        "reservations.release",
        {"scope": scope, "id": change.ident, "team": change.team, **change.previous},
        change.undo,
    )
    return json_response(
        {
            "object": "reservation.released",
            "scope": scope,
            "id": change.ident,
            "team": change.team,
            **change.previous,
        }
    )


def routes(deps: Deps) -> list[BaseRoute]:
    return [
        Route("/admin/spend", bind(get_spend, deps), methods=["GET"]),
        Route("/admin/spend/report", bind(spend_report, deps), methods=["GET"]),
        Route("/admin/reservations", bind(get_reservations, deps), methods=["GET"]),
        Route("/admin/reservations/{rid}", bind(delete_reservation, deps), methods=["DELETE"]),
        Route("/admin/budgets/{scope}/{id:path}", bind(put_budgets, deps), methods=["PUT"]),
        Route("/admin/limits/{scope}/{id:path}", bind(put_limits, deps), methods=["PUT"]),
    ]
