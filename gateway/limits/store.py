"""The ``LimitStore`` interface, its value types and the key layout both stores share.

One call is two store operations: ``reserve`` before forwarding (checks and consumes every
rate limit, reserves the cost estimate on every budget, applies the run guards: all or
nothing) and ``settle`` after the answer (books the real cost, corrects the token count,
releases the reservation; idempotent). Two more only when needed: ``reprice`` when a policy
routed the call to another model after it was reserved, and ``renew`` (one per worker every
``lease_s / 3``, for all its calls in flight) so a call longer than the lease keeps its hold. Each is one atomic step: one Lua script (one Redis
round trip) in ``RedisStore``, one synchronous function in ``MemoryStore``.

Money is integer nano-USD (1e-9 $) everywhere inside the stores: exact under concurrency
(``HINCRBY``), and a double holds any amount below $9M exactly in the Lua.

Key layout (Redis Cluster): every key of one team shares the hash tag ``{<team>}``, so the
keys of one call (its key, team, user, agent, run, model and combination scopes are all
qualified by the caller's team) live in one slot and one script can touch them atomically.
A tag per team spreads teams over the cluster's shards; the price is that every scope is
counted within a team (``model`` limits are per team, agent and run ids are namespaced by
team, which also stops one team's caller from spending another team's run budget).

    <prefix>:{<team>}:cfg                    hash   runtime overrides, field "<kind>:<id>" -> JSON
    <prefix>:{<team>}:idx                    zset   scopes seen (member "<kind>:<id>", score last use)
    <prefix>:{<team>}:res:<rid>              string "S" once settled (idempotent settle)
    <prefix>:{<team>}:<kind>:<id>:h          hash   r (reserved), tw (tokens in window), d/dk, m/mk, t
                                                    (spent per window), b0..b59 (burn ring), calls, f:<fp>,
                                                    x:<rid> (a lapsed lease booked: "<nano>:<until ms>"),
                                                    xt (when those marks are next pruned)
    <prefix>:{<team>}:<kind>:<id>:l          zset   leases: member "<rid>|<nano>", score = lease expiry ms
    <prefix>:{<team>}:<kind>:<id>:w          zset   window log: member "<rid>|<tokens>", score = arrival ms
"""

from __future__ import annotations

from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from gateway.callstate import Slot

NANO = 1_000_000_000
#: Override sections the admin API writes, and the fields each one owns.
OVERRIDE_FIELDS: dict[str, tuple[str, ...]] = {
    "budgets": ("day", "month", "total"),
    "limits": ("rpm", "tpm", "run_max_calls", "run_max_identical", "run_max_cost", "concurrent"),
}
#: Reservation flags per scope: 1 = an entry in the rate window log, 2 = a lease (the scope has a
#: budget or a limit of calls in flight).
RATE = 1
BUDGET = 2


def usd_to_nano(usd: float) -> int:
    return round(usd * NANO)


def nano_to_usd(nano: int) -> float:
    return nano / NANO


def _quote(s: str) -> str:
    # Braces would move the cluster hash tag, '|' separates combination parts.
    if any(c in s for c in "%{}|"):
        return s.replace("%", "%25").replace("{", "%7B").replace("}", "%7D").replace("|", "%7C")
    return s


def scope_ident(*parts: str) -> str:
    """The id of a (possibly combined) scope: ``agent+model`` -> ``"a1|gpt-4o"``."""
    return "|".join(_quote(p) for p in parts)


@dataclass(slots=True, frozen=True)
class ScopeSpec:
    """One scope a call is counted in, with the limits configuration gives it.

    ``None`` means no limit from configuration; a runtime override (admin API, stored with
    the counters) may still set one, and wins.
    """

    kind: str
    ident: str
    rpm: int | None = None
    tpm: int | None = None
    budget_nano: tuple[int | None, int | None, int | None] = (None, None, None)  # day, month, total
    retention_ms: int = 0  # idle TTL of the scope's counters; 0 = keep
    concurrent: int | None = None  # calls in flight at once

    @property
    def field(self) -> str:
        return f"{self.kind}:{self.ident}"


@dataclass(slots=True)
class ReserveRequest:
    team: str
    rid: str
    scopes: tuple[ScopeSpec, ...]
    est_nano: int
    est_tokens: int
    run_index: int = -1
    team_index: int = -1
    max_calls: int | None = None
    max_identical: int | None = None
    max_run_cost_nano: int | None = None
    fingerprint: str | None = None
    #: A priced action that is not a model call (an MCP tool call): only the budgets (and the
    #: run's cost cap) apply; no rate, concurrency or run-call counting.
    budget_only: bool = False


@dataclass(slots=True, frozen=True)
class RateInfo:
    limit: int
    remaining: int
    reset_ms: int


@dataclass(slots=True, frozen=True)
class BudgetInfo:
    scope: int
    window: str
    budget_nano: int
    remaining_nano: int  # before this call's reservation


@dataclass(slots=True, frozen=True)
class Denial:
    reason: str  # loop | calls | budget | reserved | concurrent | too_large | requests | tokens
    scope: int
    limit: int
    retry_after_ms: int = -1  # -1: waiting does not help
    window: str | None = None


@dataclass(slots=True)
class ReserveResult:
    ok: bool
    now_ms: int
    denial: Denial | None = None
    requests: RateInfo | None = None
    tokens: RateInfo | None = None
    budgets: tuple[BudgetInfo, ...] = ()
    flags: tuple[int, ...] = ()
    run_calls: int = 0
    run_spent_nano: int = 0
    run_repeats: int = 0
    #: Lapsed leases (dead workers' calls) this operation booked as spent, nano-USD.
    lapsed_booked_nano: int = 0


@dataclass(slots=True)
class Reservation:
    """What settle (and lease renewal, and a re-price) needs: kept in the limits area's own
    ``RESERVATION`` slot of the call."""

    team: str
    rid: str
    scopes: tuple[ScopeSpec, ...]
    flags: tuple[int, ...]
    est_nano: int
    est_tokens: int
    arrival_ms: int
    store: str
    settled: bool = False
    #: The model the estimate was priced for, and what a re-price needs to recheck the budgets.
    model: str = ""
    run_index: int = -1
    team_index: int = -1
    max_run_cost_nano: int | None = None
    #: What lapses of this reservation booked already (a re-price after its lease lapsed holds
    #: only the rest: see ``lua_leases.REPRICE``).
    booked_nano: int = 0

    @classmethod
    def made(cls, req: ReserveRequest, result: ReserveResult, store: str, model: str = "") -> Reservation:
        """The reservation ``req`` made in ``store`` (``result``: the store's answer to it)."""
        return cls(
            req.team,
            req.rid,
            req.scopes,
            result.flags,
            req.est_nano,
            req.est_tokens,
            result.now_ms,
            store,
            model=model,
            run_index=req.run_index,
            team_index=req.team_index,
            max_run_cost_nano=req.max_run_cost_nano,
        )

    @property
    def has_lease(self) -> bool:
        return any(f & BUDGET for f in self.flags)

    @property
    def lease_member(self) -> str:
        """The member this reservation holds in each of its scopes' lease sets."""
        return f"{self.rid}|{max(self.est_nano - self.booked_nano, 0)}"


#: The call's reservation: written by ``reserve``, read by ``reprice`` and settling (limits only).
RESERVATION: Slot[Reservation] = Slot("limits.reservation")


@dataclass(slots=True, frozen=True)
class RepriceResult:
    """A reservation moved to a new amount (``ok``), or refused because a budget cannot cover it."""

    ok: bool
    denial: Denial | None = None
    #: The tightest budget's remaining amount after the change (None: no budget applies).
    remaining_nano: int | None = None
    #: What lapses of the reservation booked already (its scopes hold only the rest).
    booked_nano: int = 0
    #: Lapsed leases (any dead worker's calls) this operation booked as spent, nano-USD.
    lapsed_booked_nano: int = 0


@dataclass(slots=True, frozen=True)
class SettleResult:
    applied: bool  # False: this reservation was settled before (a retry), nothing changed
    late: bool = False  # the lease had expired: the spend was booked after its reservation lapsed


@dataclass(slots=True)
class ScopeState:
    """Counters of one scope for the admin API."""

    now_ms: int
    reserved_nano: int
    spent_nano: dict[str, int] = field(default_factory=dict)  # day, month, total
    burn_nano_last_hour: int = 0
    override: dict[str, Any] = field(default_factory=dict)
    calls: int = 0


@dataclass(slots=True, frozen=True)
class Lease:
    """One reservation in flight on a scope (the admin view of its lease set)."""

    rid: str
    nano: int
    expires_ms: int

    @classmethod
    def of(cls, member: str, expires_ms: int) -> Lease:
        rid, _, nano = member.rpartition("|")
        return cls(rid, int(nano), expires_ms)


class KeySpace:
    """Key names of one gateway (one prefix); see the module docstring for the layout."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def tag(self, team: str) -> str:
        return f"{self.prefix}:{{{_quote(team)}}}"

    def cfg(self, team: str) -> str:
        return self.tag(team) + ":cfg"

    def idx(self, team: str) -> str:
        return self.tag(team) + ":idx"

    def record(self, team: str, rid: str) -> str:
        return f"{self.tag(team)}:res:{rid}"

    def scope(self, team: str, kind: str, ident: str) -> str:
        return f"{self.tag(team)}:{kind}:{ident}"


class StoreError(Exception):
    """The store could not answer (unreachable, timed out, script error)."""


class LimitStore(Protocol):
    name: str

    async def reserve(self, req: ReserveRequest) -> ReserveResult:
        """Check and consume every applicable limit for one call, atomically."""
        ...

    async def settle(self, res: Reservation, actual_nano: int, actual_tokens: int) -> SettleResult:
        """Book the real cost and tokens and release the reservation; idempotent."""
        ...

    def begin_settle(self, res: Reservation, actual_nano: int, actual_tokens: int) -> Awaitable[SettleResult]:
        """``settle``, issued now; the awaitable is its result (a ``StoreError`` if it failed).

        When this returns, the store applies the settle before any operation this process
        issues later (Redis: the command is written on the one connection every hot-path
        operation shares, and Redis runs a connection's commands in order). So the caller can
        answer its client before the reply is in: the client's next call cannot be reserved
        against the unsettled estimate."""
        ...

    async def renew(self, reservations: Sequence[Reservation]) -> int:
        """Extend the lease of every given (unsettled) reservation to a full lease from now;
        return how many were still held. One atomic step per team (one Redis round trip)."""
        ...

    async def reprice(self, res: Reservation, new_est_nano: int) -> RepriceResult:
        """Move a held reservation to ``new_est_nano`` on every budget: a larger amount only if
        every budget covers the difference (all or nothing), a smaller one releases it."""
        ...

    async def scope_state(self, team: str, kind: str, ident: str) -> ScopeState: ...

    async def set_override(
        self, team: str, kind: str, ident: str, section: str, values: dict[str, int | None]
    ) -> dict[str, Any]:
        """Replace one section (``budgets`` or ``limits``) of a scope's runtime override."""
        ...

    async def list_scopes(self, team: str, kind: str, limit: int = 1000) -> list[str]:
        """Ids of ``kind`` scopes of ``team`` with recent activity, most recent first."""
        ...

    async def leases(self, team: str, kind: str, ident: str, limit: int = 1000) -> tuple[int, list[Lease]]:
        """(now ms, the scope's reservations in flight, soonest lease expiry first)."""
        ...

    async def release(self, team: str, kind: str, ident: str, rid: str) -> tuple[str, int] | None:
        """Drop reservation ``rid``'s lease from one scope, unbooked; (member, expiry) or None."""
        ...

    async def restore(self, team: str, kind: str, ident: str, member: str, score: int) -> None:
        """Put back a lease ``release`` dropped (its audit record was refused)."""
        ...

    async def ping(self) -> None: ...

    async def close(self) -> None: ...
