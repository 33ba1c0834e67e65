"""What the approvals pages show, computed from the records (no HTTP here).

- ``InboxFilters``: the inbox's filters (group, team, agent, run, tool), each matched exactly;
- ``standing``: what the signed-in reviewer may do with one approval, and why not, from the
  same rules the service enforces (role, group, four-eyes, an earlier vote, decided);
- ``run_context``: the run's audit timeline up to the approval (previous calls, decisions,
  tools called, cost so far), through the audit store's query and ``audit.timeline``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from gateway.approvals import rules
from gateway.approvals.model import Approval, Status
from gateway.approvals.reveal import may_see_values
from gateway.audit.store.base import AuditStore, Filters
from gateway.audit.timeline import timeline
from gateway.errors import BadRequest, GatewayError
from gateway.keys.store import AdminPrincipal

#: Rows the inbox renders at most (the rest: "narrow the filters").
INBOX_ROWS = 100
#: Steps of the run shown beside an approval.
TIMELINE_STEPS = 200
_MAX_FILTER = 256


@dataclass(frozen=True, slots=True)
class InboxFilters:
    group: str = ""
    team: str = ""
    agent: str = ""
    run: str = ""
    tool: str = ""

    @classmethod
    def parse(cls, params: QueryParams) -> InboxFilters:
        values: dict[str, str] = {}
        for name in cls.__dataclass_fields__:
            value = (params.get(name) or "").strip()
            if len(value) > _MAX_FILTER or "\x00" in value:
                raise BadRequest(f"The {name} filter is limited to {_MAX_FILTER} characters.", param=name)
            values[name] = value
        return cls(**values)

    def matches(self, a: Approval) -> bool:
        return (
            (not self.group or self.group in a.groups)
            and (not self.team or a.principal.get("team") == self.team)
            and (not self.agent or a.agent_id == self.agent)
            and (not self.run or a.run_id == self.run)
            and (not self.tool or self.tool in a.tool_names())
        )

    def query(self) -> str:
        """The filters as a query string (empty ones left out)."""
        return urlencode({k: v for k, v in asdict(self).items() if v})

    @property
    def active(self) -> bool:
        return any(asdict(self).values())


@dataclass(frozen=True, slots=True)
class Standing:
    """What this reviewer may do: ``approve``/``deny`` allowed, and the reason when not."""

    approve: bool
    deny: bool
    why_not: str | None
    short: str

    @property
    def any(self) -> bool:
        return self.approve or self.deny


def standing(a: Approval, user: AdminPrincipal, now: float) -> Standing:
    """The service's own rules, asked ahead of time (its route enforces them anyway)."""
    if not user.has_role("approver"):
        roles = ", ".join(sorted(user.roles)) or "none"
        return Standing(
            False, False, f"Your key's role ({roles}) may read approvals but not decide them.", "read only"
        )
    if a.status is not Status.PENDING or a.overdue(now):
        state = "expired" if a.overdue(now) else a.status.value
        return Standing(False, False, f"This approval is {state}; nothing is left to decide.", state)
    try:
        rules.may_review(a, user)
    except GatewayError as exc:
        return Standing(False, False, exc.message, "other group")
    if rules.is_requester(a, user):
        return Standing(
            False,
            False,
            f"Four-eyes: you ({user.user}) caused this approval, so you can neither approve nor "
            "deny it; another reviewer of its group decides.",
            "yours (four-eyes)",
        )
    if any(v.user == user.user for v in a.votes):
        return Standing(
            False, True, "You already approved this; it needs another reviewer's approval.", "voted"
        )
    return Standing(True, True, None, "decide")


async def run_context(store: AuditStore | None, a: Approval, user: AdminPrincipal) -> dict[str, Any]:
    """``{"state": "ok"|"hidden"|"off"|"none"|"unavailable", "run": timeline | None}``.

    Shown to auditors (the run API's role) and to the approval's own reviewers, whose decision
    it is context for; everyone else sees that it is hidden."""
    if not a.run_id:
        return {"state": "none", "run": None}
    if not (user.has_role("auditor") or may_see_values(a, user)):
        return {"state": "hidden", "run": None}
    if store is None:
        return {"state": "off", "run": None}
    filters = Filters(run_id=a.run_id, until=a.created_at)
    try:
        events = await store.query(filters, limit=TIMELINE_STEPS, desc=True)
        totals = await store.spend("run", filters)
    except GatewayError:
        return {"state": "unavailable", "run": None}
    events.reverse()  # the latest TIMELINE_STEPS, oldest first
    run = timeline(a.run_id, events, totals, None)
    run["truncated"] = len(events) >= TIMELINE_STEPS
    return {"state": "ok", "run": run}
