"""``/console/policies`` (admin): the active policy revision, its files and test results, the
reload history, and "try a decision".

- The revision, its Rego modules and data files, the ``*_test.rego`` results of the load, the
  last refused reload and the files that need a restart: ``PolicyManager.status()``, as
  ``GET /admin/policies`` answers it.
- The reload history: the ``policy`` events of the audit log (every load, refused or not,
  with its reason and who asked), newest first.
- Try a decision (``POST``, CSRF-checked): an input document (JSON, the shape
  ``gateway/policy/input.py`` builds) evaluated for the request or response phase against
  the active revision's snapshot, normalised like every call's (``PolicyDecision``). Nothing
  is recorded and no call is made; an engine or shape error is shown as the error it is.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response

from gateway.audit.store.base import Filters
from gateway.console.web import Page, PageRequest, PageRoute
from gateway.errors import BadRequest, ServiceUnavailable
from gateway.policy.service import PolicyService

_PHASES = ("request", "response")
_MAX_INPUT = 64 * 1024
#: A request-phase input to start from (the shape of gateway/policy/input.py).
EXAMPLE: dict[str, Any] = {
    "version": 1,
    "principal": {"key_id": "k1", "team": "support", "user": "u1", "roles": [], "tags": {}},
    "agent": {"id": "planner", "run_id": "run-1", "parent_run_id": None},
    "request": {
        "endpoint": "chat.completions",
        "model": "gpt-4o-mini",
        "messages": [{"role": "user", "content": "hello"}],
        "tools": [],
        "tool_results": [],
        "params": {},
    },
    "pii": {"entities": {}, "locations": [], "unscanned": 0},
    "cost": {"estimate_usd": 0.01, "remaining_usd": {"key": 10}, "budget_usd": {"key": 20}},
    "run": {"calls": 1, "spend_usd": 0.01, "repeats": 0},
    "time": {"now": "2025-01-06T10:00:00Z", "weekday": "Monday", "hour": 10},
}


def _service(page: PageRequest) -> PolicyService:
    service = page.deps.policy()
    if service is None:
        raise ServiceUnavailable("The policy engine is disabled (policy.enabled: false).")
    return service


async def _history(page: PageRequest) -> list[dict[str, Any]]:
    store = page.deps.audit_store()
    if store is None or not store.queryable:
        return []
    return [ev.get("data") or {} for ev in await store.query(Filters(kind="policy"), limit=20)]


async def _page(page: PageRequest, tried: dict[str, Any] | None, status: int = 200) -> Response:
    service = _service(page)
    return page.render(
        "policies.html",
        status,
        status_doc=service.manager.status(),
        history=await _history(page),
        phases=_PHASES,
        tried=tried
        or {"phase": "request", "input": orjson.dumps(EXAMPLE, option=orjson.OPT_INDENT_2).decode()},
    )


async def policies(page: PageRequest) -> Response:
    """The active revision, its files and tests, the reload history, the try form."""
    return await _page(page, None)


async def try_decision(page: PageRequest) -> Response:
    """Evaluate the posted input document against the active revision."""
    service = _service(page)
    phase = page.form.get("phase", "request")
    text = page.form.get("input", "")
    if phase not in _PHASES:
        raise BadRequest("'phase' must be request or response.", param="phase")
    tried: dict[str, Any] = {"phase": phase, "input": text}
    if len(text) > _MAX_INPUT:
        tried["error"] = f"The input is over {_MAX_INPUT} bytes."
        return await _page(page, tried, 400)
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        tried["error"] = f"The input is not JSON: {exc}"
        return await _page(page, tried, 400)
    if not isinstance(doc, dict):
        tried["error"] = "The input must be a JSON object."
        return await _page(page, tried, 400)
    tried.update(await service.try_decision(phase, doc))
    return await _page(page, tried)


PAGE = Page(
    name="policies",
    title="Policies",
    roles=("admin",),
    routes=(
        PageRoute("/policies", policies, roles=("admin",)),
        PageRoute("/policies/try", try_decision, roles=("admin",), methods=("POST",)),
    ),
)
