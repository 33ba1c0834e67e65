"""``/console/spend``: spend over time, budgets, top spenders, reservations in flight (auditor).

- The chart: settled cost per time bucket for each team / key / agent / model
  (``audit.explore.spend_series``), drawn by the vendored uPlot from a ``data-chart``
  attribute (JSON as an escaped attribute value: no inline script); the same numbers are in a
  table below it for keyboards and screen readers.
- Top spenders: the audit log's settled-spend report (``GET /admin/spend/report``'s query).
- Budgets: every team's and key's budget windows from the limits store as ``GET /admin/spend``
  gives them (spent, reserved, remaining, the burn-rate forecast).
- Reservations in flight on each team and key that holds some (``GET /admin/reservations``).

Roles as the admin API's for the same data: auditor or admin.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from gateway.admin.record import record_read
from gateway.audit import explore, query
from gateway.audit.schema import NANO
from gateway.console.pages.runs import store_of
from gateway.console.web import Page, PageRequest, PageRoute
from gateway.errors import BadRequest, GatewayError
from gateway.limits.admin import LimitsAdmin, ReservationsAdmin

GROUPS = ("team", "key", "agent", "model")
WINDOWS = ("1h", "24h", "7d", "30d")
_PARAMS = frozenset({"group_by", "window", "team", "key", "agent", "model"})
_TOP = 20
#: Series drawn at most (the rest are summed as "other"): a chart of 200 lines says nothing.
_MAX_LINES = 8


def _chart(series: dict[str, Any]) -> dict[str, Any]:
    lines = sorted(series["series"].items(), key=lambda kv: -sum(kv[1]))
    shown, rest = lines[:_MAX_LINES], lines[_MAX_LINES:]
    if rest:
        other = [sum(v) for v in zip(*(line for _, line in rest), strict=True)]
        shown.append((f"other ({len(rest)})", other))
    return {
        "x": series["buckets"],
        "series": [{"label": name, "values": [round(v, 9) for v in values]} for name, values in shown],
    }


async def _budgets(
    admin: LimitsAdmin | None,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], str | None]:
    """Budget rows of every team and key, and the reservations in flight on them."""
    if admin is None:
        return [], [], "Limits and budgets are off on this gateway (limits.enabled: false)."
    rows: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    try:
        views = await admin.list("team", None) + await admin.list("key", None)
        for view in views:
            windows = view["windows"]
            # The windows with a budget; a scope without any shows one row (this month's spend).
            shown = [w for w in windows if windows[w].get("budget_usd") is not None]
            if not shown and any(v.get("spent_usd") for v in windows.values()):
                shown = ["month"] if "month" in windows else list(windows)[:1]
            for window in shown:
                rows.append(
                    {
                        "scope": view["scope"],
                        "id": view["id"],
                        "window": window,
                        **windows[window],
                        "reserved_usd": view["reserved_usd"],
                        "burn": view["burn_rate_usd_per_hour"],
                    }
                )
            if view.get("reserved_usd"):
                found = await ReservationsAdmin(admin).list(view["scope"], view["id"], view.get("team"))
                held += [{"scope": view["scope"], "id": view["id"], **r} for r in found["data"]]
    except GatewayError as exc:
        return rows, held, exc.message
    return rows, held, None


async def spend(page: PageRequest) -> Response:
    """Spend over time, budgets, top spenders, reservations in flight."""
    store = store_of(page)
    params = {k: v for k, v in page.request.query_params.items() if v != ""}
    query.check_params(params, _PARAMS)
    group_by = params.get("group_by", "team")
    window = params.get("window", "7d")
    if group_by not in GROUPS:
        raise BadRequest(f"'group_by' must be one of {', '.join(GROUPS)}.", param="group_by")
    if window not in WINDOWS:
        raise BadRequest(f"'window' must be one of {', '.join(WINDOWS)}.", param="window")
    since, until = query.parse_window({"window": window})
    filters = query.parse_filters({k: v for k, v in params.items() if k in ("team", "key", "agent", "model")})
    filters.since, filters.until = since, until
    series = await explore.spend_series(store, group_by, filters)
    top = series["totals"][:_TOP]
    await record_read(page.deps.audit(), page.request, page.user, len(series["totals"]))
    budgets, reservations, limits_note = await _budgets(page.deps.limits())
    chart = _chart(series)
    return page.render(
        "spend.html",
        params=params,
        group_by=group_by,
        window=window,
        groups=GROUPS,
        windows=WINDOWS,
        chart=chart,
        chart_json=orjson.dumps(chart).decode(),
        bucket_s=series["bucket_s"],
        top=[{**r, "cost_usd": r["cost_nusd"] / NANO} for r in top],
        budgets=budgets,
        reservations=reservations,
        limits_note=limits_note,
    )


PAGE = Page(
    name="spend",
    title="Spend",
    roles=("auditor",),
    routes=(PageRoute("/spend", spend, roles=("auditor",)),),
)
