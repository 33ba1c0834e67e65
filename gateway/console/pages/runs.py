"""``/console/runs``: the run explorer (auditor; admin passes).

- ``/console/runs``: find runs by agent, team, key, model, time window and outcome (denied,
  error, pending approval, clean), most recently active first, paged by last activity.
- ``/console/runs/{run_id}``: the run as a tree (its parent runs, its agents, the sub-runs
  started under it) and its timeline, oldest first: per call the model requested and used,
  every decision per phase with its reasons and revision and a "why" panel (the decision's
  effects and the summary of the input the policy saw), the tool calls requested (arguments
  only from a content capture, i.e. redacted), the approval, retries and the deployments
  tried, tokens, cost and latency per stage, and the captured content when there is one.
  Approval and admin events of the run appear in the timeline too.

The data is the admin API's: the same filters (``audit.query``), the same timeline
(``audit.timeline``), the same roles (``GET /admin/runs/{id}`` is auditor-or-admin).
"""

from __future__ import annotations

import time
from typing import Any

from starlette.responses import Response

from gateway.admin.record import record_read
from gateway.audit import explore, query
from gateway.audit.store.base import AuditStore, Filters
from gateway.audit.timeline import capture_ids, step, timeline
from gateway.console.pages.runs_view import NESTED, decision_view, shape, with_keys
from gateway.console.web import Page, PageRequest, PageRoute
from gateway.errors import BadRequest, NotFound, ServiceUnavailable

WINDOWS = ("1h", "24h", "7d", "30d", "all")
_LIST_PARAMS = frozenset({"agent", "team", "key", "model", "outcome", "window", "before"})
_RUN_PARAMS = frozenset({"cursor"})
_TIMELINE_PAGE = 500
_RUNS_PAGE = 50


def store_of(page: PageRequest) -> AuditStore:
    store = page.deps.audit_store()
    if store is None:
        raise ServiceUnavailable("The audit log is disabled on this gateway.")
    return store


def _filled(params: Any, names: frozenset[str]) -> dict[str, str]:
    """The query's non-empty fields (an empty form field means "any")."""
    query.check_params(params, names)
    return {k: v for k, v in params.items() if v != ""}


async def runs(page: PageRequest) -> Response:
    """Find runs."""
    store = store_of(page)
    params = _filled(page.request.query_params, _LIST_PARAMS)
    window = params.get("window", "7d")
    if window not in WINDOWS:
        raise BadRequest(f"'window' must be one of {', '.join(WINDOWS)}.", param="window")
    outcome = params.get("outcome")
    if outcome is not None and outcome not in explore.OUTCOMES:
        raise BadRequest(f"'outcome' must be one of {', '.join(explore.OUTCOMES)}.", param="outcome")
    since, until = query.parse_window({"window": window})
    filters = query.parse_filters({k: v for k, v in params.items() if k in ("agent", "team", "key", "model")})
    filters.since, filters.until = since, until
    before = query.parse_time(params["before"], "before") if "before" in params else None
    found = await explore.find_runs(store, filters, outcome=outcome, before=before, limit=_RUNS_PAGE)
    await record_read(page.deps.audit(), page.request, page.user, len(found))
    more = None
    if len(found) == _RUNS_PAGE:
        more = {**params, "before": repr(found[-1].last)}
    return page.render(
        "runs.html",
        runs=found,
        params=params,
        window=window,
        windows=WINDOWS,
        outcomes=explore.OUTCOMES,
        more=more,
    )


async def run_detail(page: PageRequest) -> Response:
    """One run: its tree and its timeline."""
    store = store_of(page)
    params = _filled(page.request.query_params, _RUN_PARAMS)
    run_id = query.text(page.request.path_params["run_id"], "run_id")
    after = query.decode_cursor(params.get("cursor"), False)
    filters = Filters(run_id=run_id)
    events = await store.query(filters, after=after, limit=_TIMELINE_PAGE, desc=False)
    if not events and after is None:
        raise NotFound(f"No audit events for run {run_id!r}.", param="run_id")
    await record_read(page.deps.audit(), page.request, page.user, len(events))
    totals = await explore.totals(store, filters)
    captures = await store.captures(capture_ids(events))
    next_cursor = None
    if len(events) == _TIMELINE_PAGE:
        next_cursor = query.encode_cursor(events[-1]["ts"], events[-1]["id"], False)
    doc = timeline(run_id, events, totals, next_cursor, captures)
    kids: list[dict[str, Any]] = []
    if events:
        kids = await explore.children(store, run_id, events[0]["ts"], events[-1]["ts"])
    agents: dict[str, int] = {}
    for s in doc["steps"]:
        if s.get("kind") == "call" and s.get("agent_id"):
            agents[s["agent_id"]] = agents.get(s["agent_id"], 0) + 1
    return page.render(
        "runs_detail.html",
        run=doc,
        steps=[shape(s) for s in doc["steps"]],
        agents=sorted(agents.items()),
        children=kids,
        now=time.time(),
    )


async def _one_event(page: PageRequest) -> dict[str, Any]:
    """The event a panel is about (its read recorded like any audit read), or 404."""
    store = store_of(page)
    event_id = query.text(page.request.path_params["event_id"], "id")
    found = await store.get(event_id)
    await record_read(page.deps.audit(), page.request, page.user, 0 if found is None else 1)
    if found is None or found.get("kind") != "call":
        raise NotFound(f"No call event {event_id!r}.", param="id")
    return found


def _layout(page: PageRequest) -> str:
    """A panel opened in the run page (htmx) is a fragment; followed as a link, a page."""
    return "panel.html" if page.request.headers.get("hx-request") else "base.html"


async def why_panel(page: PageRequest) -> Response:
    """One decision's "why" (its effects and the input summary the policy saw), loaded when
    its panel is opened: the run page renders the timeline only, not 200 of these."""
    query.check_params(page.request.query_params, frozenset({"decision"}))
    event = await _one_event(page)
    raw = page.request.query_params.get("decision", "")
    decisions = event.get("decisions") or []
    if not raw.isdigit() or int(raw) >= len(decisions) or not isinstance(decisions[int(raw)], dict):
        raise NotFound(f"No decision {raw!r} in event {event['id']!r}.", param="decision")
    decision = decision_view(decisions[int(raw)], int(raw))
    if decision["why"] is None:
        raise NotFound(f"Decision {raw} of event {event['id']!r} recorded no why.", param="decision")
    return page.render(
        "runs_why.html",
        layout=_layout(page),
        d=decision,
        event_id=event["id"],
        run_id=(event.get("agent") or {}).get("run_id"),
    )


async def capture_panel(page: PageRequest) -> Response:
    """What the agent saw in one call (its content capture, checked against the sealed hash)."""
    query.check_params(page.request.query_params, frozenset())
    event = await _one_event(page)
    store = store_of(page)
    capture = step(event, await store.captures(capture_ids([event]))).get("capture")
    if capture is None:
        raise NotFound(f"Event {event['id']!r} has no content capture.", param="id")
    return page.render(
        "runs_capture.html",
        layout=_layout(page),
        capture=with_keys(capture, NESTED["capture"]),
        event_id=event["id"],
        run_id=(event.get("agent") or {}).get("run_id"),
    )


PAGE = Page(
    name="runs",
    title="Runs",
    roles=("auditor",),
    routes=(
        PageRoute("/runs", runs, roles=("auditor",)),
        PageRoute("/why/{event_id}", why_panel, roles=("auditor",)),
        PageRoute("/capture/{event_id}", capture_panel, roles=("auditor",)),
        PageRoute("/runs/{run_id:path}", run_detail, roles=("auditor",)),
    ),
)
