"""What one stage tells the others about a call: typed values on ``Call``, one writer each.

Stages never talk through a shared dict with string keys: what crosses areas is a field of
``Call`` (``limits``, ``budget``, ``run``, ``pii``, ``vault``, ``policy_redact``,
``routed_model``, ``approval_ask``, ``approval``, ``replayed``, ``cache_directive``, ``cache``) whose docstring names the one
area that writes it; everyone else reads it. What a stage keeps for itself between its
hooks (a stream hold-back buffer, a reservation, a policy snapshot) lives in a ``Slot``: a
key object only the owning module holds, so no other area can reach it by name.

The values here are small: the dataclasses that policies see (``Budget``, ``RunTally``)
give the exact dicts the policy input has always carried (``as_input``), so the Rego input
document is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

T = TypeVar("T")


class Carrier(Protocol):
    """What holds slots: a ``Call`` (named structurally, so this module needs no import of it)."""

    slots: dict[Slot[Any], Any]

    @property
    def approval_ask(self) -> ApprovalAsk | None: ...

    @property
    def approval(self) -> ApprovalOutcome | None: ...


class Slot(Generic[T]):
    """A stage's private place on a call (Envoy's typed per-filter state).

    The key is this object: only the module that created it can read or write the value, and
    the type checker knows its type. ``name`` is for debugging only."""

    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def get(self, call: Carrier) -> T | None:
        return call.slots.get(self)

    def put(self, call: Carrier, value: T) -> T:
        call.slots[self] = value
        return value

    def clear(self, call: Carrier) -> None:
        call.slots.pop(self, None)

    def __repr__(self) -> str:
        return f"Slot({self.name!r})"


@dataclass(slots=True)
class LimitsView:
    """What the limits stage did with the call. Writer: the limits area (``reserve`` creates
    it, ``reprice`` updates the estimate, settling records what was booked and why).
    Readers: audit (reserved vs settled), ``limits.booking``."""

    #: The conservative bound priced before forwarding: input/output tokens and USD.
    estimate: dict[str, Any]
    #: USD held on every budget for the call (0 when nothing was reserved).
    reserved_usd: float = 0.0
    #: Where it was reserved: a store name, ``"local"`` (fallback) or ``"none"`` (store down,
    #: allowed); None before the store answered.
    store: str | None = None
    #: What was booked at the end, and on which basis (``usage``, ``reservation``, ...).
    settled_usd: float | None = None
    settle_basis: str | None = None


@dataclass(slots=True, frozen=True)
class Budget:
    """The cost estimate and what the budgets have left. Writer: limits (``reserve``,
    ``reprice``). Readers: policies (``input.cost``), metrics (budget remaining gauges)."""

    estimate_usd: float
    remaining_usd: dict[str, float] = field(default_factory=dict)
    budget_usd: dict[str, float] = field(default_factory=dict)

    def as_input(self) -> dict[str, Any]:
        return {
            "estimate_usd": self.estimate_usd,
            "remaining_usd": self.remaining_usd,
            "budget_usd": self.budget_usd,
        }


@dataclass(slots=True, frozen=True)
class RunTally:
    """The agent run so far, as the limits store counted it when reserving this call.
    Writer: limits (``reserve``, only for a call with a run id). Reader: policies
    (``input.run``)."""

    calls: int
    spend_usd: float
    repeats: int

    def as_input(self) -> dict[str, Any]:
        return {"calls": self.calls, "spend_usd": self.spend_usd, "repeats": self.repeats}


class Concealer(Protocol):
    """The part of the redaction vault other areas may use: placeholders for the caller's
    values (``conceal``) and the values back (``restore``, returns (text, restored count))."""

    def conceal(self, text: str) -> str: ...

    def restore(self, text: str) -> tuple[str, Any]: ...


@dataclass(slots=True, frozen=True)
class ApprovalAsk:
    """A policy decision's ``require_approval`` for one phase. Writer: the policy stage of
    that phase. Reader: the approval stage of the same phase, audit.

    ``items``: ``[{"reason", "tool_call_id"?, "approvers"?, "ttl_s"?, "hold_s"?, "mode"?,
    "approvals_required"?}]`` as the policy gave them; ``decision``: the policy decision."""

    phase: str
    items: tuple[dict[str, Any], ...]
    decision: dict[str, Any] | None = None
    revision: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The ask in the shape approvals' ``resolve`` and the audit event read."""
        return {
            "phase": self.phase,
            "items": list(self.items),
            "decision": self.decision,
            "revision": self.revision,
        }


@dataclass(slots=True, frozen=True)
class ApprovalOutcome:
    """The approval this call created, joined or redeemed. Writer: the approval stages.
    Readers: audit, the approval stages (an ask already answered is not asked again).

    ``ask`` is the ask it answers (None for a re-send redeeming an approval the call did not
    ask for); ``fields``: id, status, mode, phase, reviewer, comment and timestamps."""

    ask: ApprovalAsk | None
    fields: dict[str, Any]


@dataclass(slots=True, frozen=True)
class StreamAnswer:
    """A streamed answer as a stage that read it whole assembled it (a stream has no JSON
    body to look at afterwards). Writer: ``policy_response`` on a stream. Reader: audit.

    ``tool_calls``: ``[{"id", "name", ...}]``; the audit event keeps the id and name only."""

    tool_calls: tuple[dict[str, Any], ...]
    finish_reason: str | None


@dataclass(slots=True, frozen=True)
class CacheDirective:
    """The request policy's ``cache`` decision. Writer: policy (request). Reader: the cache.

    ``mode``: ``exact`` | ``semantic`` | ``off``; ``ttl_s``: how long a stored answer may be
    served (None: the cache's default); ``scope``: who shares answers (``team``, ``key``,
    ``global``); ``threshold``: the least similarity of a semantic hit (None: the cache's
    default)."""

    mode: str
    ttl_s: float | None = None
    scope: str = "team"
    threshold: float | None = None


@dataclass(slots=True)
class CacheOutcome:
    """What the response cache did with the call. Writer: the cache stage. Readers: limits
    (a hit is booked at zero), audit (the event's ``cache`` section), metrics.

    ``status``: ``hit`` | ``miss`` | ``bypass`` | ``store`` (the ``x-wardgate-cache`` header);
    ``reason``: why a bypass (or why the mode was changed); ``saved_usd``: on a hit, what the answer cost when it was
    stored (None: unknown)."""

    status: str
    mode: str = "off"
    scope: str | None = None
    reason: str | None = None
    saved_usd: float | None = None
    #: On a semantic hit: the cosine similarity of the question it was served for.
    similarity: float | None = None
    #: This call's answer was stored (set by ``cache_store``, before the audit event).
    stored: bool = False

    def as_event(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "mode": self.mode, "scope": self.scope}
        if self.stored:
            out["stored"] = True
        if self.reason is not None:
            out["reason"] = self.reason
        if self.saved_usd is not None:
            out["saved_usd"] = self.saved_usd
            out["saved_nusd"] = round(self.saved_usd * 1_000_000_000)
        if self.similarity is not None:
            out["similarity"] = round(self.similarity, 4)
        return out


def approval_view(call: Carrier) -> dict[str, Any] | None:
    """The call's approval as one dict (the ask, with the outcome that answers it), for the
    audit event; None when no approval was asked for or redeemed."""
    ask, outcome = call.approval_ask, call.approval
    if outcome is not None and (outcome.ask is ask or ask is None):
        base = ask.as_dict() if ask is not None else {"phase": outcome.fields.get("phase"), "items": []}
        return {**base, **outcome.fields}
    return ask.as_dict() if ask is not None else None
