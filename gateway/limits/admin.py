"""Admin operations: spend per scope with a burn-rate forecast, and runtime budgets/limits.

Runtime budgets and limits are stored *with the counters* (the team's ``cfg`` hash in Redis,
or the memory store), so every replica applies a change on its very next call, atomically
with the check, and it survives restarts of the gateway. They win over limits.yaml and
keys.yaml field by field; ``null`` means "no limit" (even if the file sets one), and a field
left out of a PUT falls back to the files again.

Every number has a documented range (``bounds.py``): budgets 0..1,000,000 USD, counts
0..2^53-1; anything else is 400 naming the field. A change is applied only if its audit event
is stored: the API writes it, records it, and puts the previous values back if the audit log
refuses (503 ``audit_unavailable``); ``Change.undo`` is that way back.

Forecast: the burn rate is the spend booked in the last 60 minutes (one-minute buckets kept
with the counters); at that rate, ``runs_out_at`` is when the remaining budget of each window
is gone, or null when that would be after the window resets, beyond any date worth printing,
or nothing was spent. It never raises, whatever the budget.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from gateway.call import Principal
from gateway.errors import BadRequest, LimitsUnavailable, NotFound
from gateway.keys.store import KeyStore
from gateway.limits.bounds import OutOfRange, check_count, check_usd
from gateway.limits.rules import KINDS, LimitRules, ScopeLimits
from gateway.limits.store import OVERRIDE_FIELDS, LimitStore, ScopeState, StoreError, nano_to_usd, usd_to_nano
from gateway.limits.windows import WINDOWS, window_bounds

_LIMIT_FIELDS = {  # API name -> (store field, unit: "count" | "usd")
    "requests_per_minute": ("rpm", "count"),
    "tokens_per_minute": ("tpm", "count"),
    "run_max_calls": ("run_max_calls", "count"),
    "run_max_identical_requests": ("run_max_identical", "count"),
    "run_max_cost_usd": ("run_max_cost", "usd"),
    "max_concurrent_requests": ("concurrent", "count"),
}
_STORE_TO_API = {store: api for api, (store, _) in _LIMIT_FIELDS.items()}


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat().replace("+00:00", "Z") if dt is not None else None


def _pick(override: dict[str, Any], field: str, default: int | None) -> int | None:
    return override[field] if field in override else default


def _checked(check: Callable[[Any, str], Any], value: Any, name: str) -> Any:
    try:
        return check(value, name)
    except OutOfRange as exc:
        raise BadRequest(str(exc), param=exc.param) from None


@dataclass(slots=True, frozen=True)
class Change:
    """A runtime override just written: what the audit record says, and how to put it back."""

    team: str
    ident: str
    previous: dict[str, Any]
    undo: Callable[[], Awaitable[None]]


class LimitsState(Protocol):
    """What the admin operations read of the limits service (``LimitsService``): its store and
    its current rules. A protocol, so the service can hold its admin without an import cycle."""

    @property
    def store(self) -> LimitStore: ...

    @property
    def rules(self) -> LimitRules: ...


class LimitsAdmin:
    def __init__(self, service: LimitsState, keys: KeyStore) -> None:
        self._service = service
        self._keys = keys

    @property
    def store(self) -> LimitStore:
        return self._service.store

    # -- scope resolution -----------------------------------------------------------------

    def _principal(self, key_id: str) -> Principal | None:
        return next((p for p in self._keys.principals() if p.key_id == key_id), None)

    def resolve(self, kind: str, ident: str | None, team: str | None) -> tuple[str, str, Principal | None]:
        """(team, id, principal) of a scope named by the admin API; keys know their team."""
        if kind not in KINDS:
            raise BadRequest(f"Unknown scope '{kind}'; one of {list(KINDS)}.", param="scope")
        if not ident:
            raise BadRequest("A scope id is required.", param="id")
        if kind == "team":
            return ident, ident, None
        if kind == "key":
            principal = self._principal(ident)
            if principal is None:
                raise NotFound(f"No key with id '{ident}'.", param="id")
            return principal.team, ident, principal
        if not team:
            raise BadRequest(f"Scope '{kind}' is counted per team: add ?team=<team>.", param="team")
        return team, ident, None

    async def _state(self, team: str, kind: str, ident: str) -> ScopeState:
        try:
            return await self._service.store.scope_state(team, kind, ident)
        except StoreError as exc:
            raise LimitsUnavailable(f"The limits store is unavailable: {exc}") from exc

    # -- views ----------------------------------------------------------------------------

    async def spend(self, kind: str, ident: str | None, team: str | None) -> dict[str, Any]:
        team, ident, principal = self.resolve(kind, ident, team)
        rules = self._service.rules
        cfg: ScopeLimits = rules.limits_for(
            kind, team, model=ident if kind == "model" else None, principal=principal
        )
        state = await self._state(team, kind, ident)
        ov = state.override
        budgets = {w: (usd_to_nano(cfg.budget_usd[w]) if w in cfg.budget_usd else None) for w in WINDOWS}
        budgets = {w: _pick(ov, w, b) for w, b in budgets.items()}
        if kind == "run":
            guards = rules.run_guards(team)
            team_ov = (await self._state(team, "team", team)).override
            cap = _pick(
                team_ov,
                "run_max_cost",
                None if guards.max_cost_usd is None else usd_to_nano(guards.max_cost_usd),
            )
            if cap is not None:
                budgets["total"] = cap if budgets["total"] is None else min(cap, budgets["total"])
        now_ms = state.now_ms
        now = datetime.fromtimestamp(now_ms / 1000, tz=UTC)
        burn = state.burn_nano_last_hour  # nano-USD per hour
        windows: dict[str, Any] = {}
        for w in WINDOWS:
            start, end = window_bounds(w, now_ms)
            spent = state.spent_nano.get(w, 0)
            budget = budgets[w]
            remaining = None if budget is None else budget - spent - state.reserved_nano
            windows[w] = {
                "spent_usd": nano_to_usd(spent),
                "budget_usd": None if budget is None else nano_to_usd(budget),
                "remaining_usd": None if remaining is None else nano_to_usd(max(remaining, 0)),
                "start": _iso(start),
                "resets_at": _iso(end),
                **_forecast(remaining, burn, now, end),
            }
        view: dict[str, Any] = {
            "scope": kind,
            "id": ident,
            "team": team,
            "as_of": _iso(now),
            "reserved_usd": nano_to_usd(max(state.reserved_nano, 0)),
            "burn_rate_usd_per_hour": nano_to_usd(burn),
            "windows": windows,
            "limits": {
                "requests_per_minute": _pick(ov, "rpm", cfg.requests_per_minute),
                "tokens_per_minute": _pick(ov, "tpm", cfg.tokens_per_minute),
                "max_concurrent_requests": _pick(ov, "concurrent", cfg.max_concurrent_requests),
            },
            "override": _override_view(ov),
        }
        if kind == "run":
            view["calls"] = state.calls
        if kind == "team":
            guards = rules.run_guards(team)
            cost = _pick(
                ov, "run_max_cost", None if guards.max_cost_usd is None else usd_to_nano(guards.max_cost_usd)
            )
            view["run_guards"] = {
                "max_calls": _pick(ov, "run_max_calls", guards.max_calls),
                "max_identical_requests": _pick(ov, "run_max_identical", guards.max_identical_requests),
                "max_cost_usd": None if cost is None else nano_to_usd(cost),
            }
        return view

    async def list(self, kind: str, team: str | None, limit: int = 200) -> list[dict[str, Any]]:
        """Spend of every known scope of a kind (keys and teams from keys.yaml, others from activity)."""
        if kind == "team":
            teams = sorted({p.team for p in self._keys.principals()} | set(self._service.rules.doc.teams))
            return [await self.spend("team", t, None) for t in teams[:limit]]
        if kind == "key":
            keys = [p for p in self._keys.principals() if team is None or p.team == team]
            return [await self.spend("key", p.key_id, None) for p in keys[:limit]]
        if not team:
            raise BadRequest(f"Listing '{kind}' scopes needs ?team=<team>.", param="team")
        try:
            idents = await self._service.store.list_scopes(team, kind, limit)
        except StoreError as exc:
            raise LimitsUnavailable(f"The limits store is unavailable: {exc}") from exc
        return [await self.spend(kind, i, team) for i in idents]

    # -- updates --------------------------------------------------------------------------

    async def set_budgets(self, kind: str, ident: str, team: str | None, body: Any) -> Change:
        team, ident, _ = self.resolve(kind, ident, team)
        if isinstance(body, dict) and isinstance(body.get("budget_usd"), dict):
            body = body["budget_usd"]
        if not isinstance(body, dict) or set(body) - set(WINDOWS):
            raise BadRequest(
                f"Body must be an object with any of {list(WINDOWS)} (USD, or null for no limit)."
            )
        values: dict[str, int | None] = {}
        for w, v in body.items():
            usd = _checked(check_usd, v, w)
            values[w] = None if usd is None else usd_to_nano(usd)
        return await self._write(team, kind, ident, "budgets", values)

    async def set_limits(self, kind: str, ident: str, team: str | None, body: Any) -> Change:
        team, ident, _ = self.resolve(kind, ident, team)
        if not isinstance(body, dict) or set(body) - set(_LIMIT_FIELDS):
            raise BadRequest(f"Body must be an object with any of {list(_LIMIT_FIELDS)} (null for no limit).")
        values: dict[str, int | None] = {}
        for name, v in body.items():
            field, unit = _LIMIT_FIELDS[name]
            if name.startswith("run_") and kind != "team":
                raise BadRequest(f"'{name}' is a run guard: set it on a team scope.", param=name)
            if unit == "usd":
                usd = _checked(check_usd, v, name)
                values[field] = None if usd is None else usd_to_nano(usd)
            else:
                values[field] = _checked(check_count, v, name)
        return await self._write(team, kind, ident, "limits", values)

    async def _write(
        self, team: str, kind: str, ident: str, section: str, values: dict[str, int | None]
    ) -> Change:
        store = self._service.store
        old = (await self._state(team, kind, ident)).override
        previous = {f: old[f] for f in OVERRIDE_FIELDS[section] if f in old}
        try:
            await store.set_override(team, kind, ident, section, values)
        except StoreError as exc:
            raise LimitsUnavailable(f"The limits store is unavailable: {exc}") from exc

        async def undo() -> None:
            await store.set_override(team, kind, ident, section, previous)

        return Change(team, ident, _override_view(previous), undo)


#: A forecast further out than this is not a date anyone acts on (and a datetime ends at 9999).
_HORIZON_S = 10 * 365 * 86400.0


class ReservationsAdmin:
    """In-flight reservations of one scope: list them, release one (a stuck hold)."""

    def __init__(self, limits: LimitsAdmin) -> None:
        self._limits = limits

    async def list(self, kind: str, ident: str | None, team: str | None) -> dict[str, Any]:
        team, ident, _ = self._limits.resolve(kind, ident, team)
        try:
            now, leases = await self._limits.store.leases(team, kind, ident)
        except StoreError as exc:
            raise LimitsUnavailable(f"The limits store is unavailable: {exc}") from exc
        data = [
            {
                "id": lease.rid,
                "reserved_usd": nano_to_usd(lease.nano),
                "lease_expires_at": _iso(datetime.fromtimestamp(lease.expires_ms / 1000, tz=UTC)),
                "lease_expires_in_s": round((lease.expires_ms - now) / 1000, 3),
            }
            for lease in leases
        ]
        return {"object": "list", "scope": kind, "id": ident, "team": team, "data": data}

    async def release(self, kind: str, ident: str | None, team: str | None, rid: str) -> Change:
        """Drop ``rid``'s hold on this scope, unbooked: if the call is alive after all, its settle
        books its real cost when it comes (and its worker stops renewing the lease)."""
        team, ident, _ = self._limits.resolve(kind, ident, team)
        store = self._limits.store
        try:
            released = await store.release(team, kind, ident, rid)
        except StoreError as exc:
            raise LimitsUnavailable(f"The limits store is unavailable: {exc}") from exc
        if released is None:
            raise NotFound(
                f"No reservation '{rid}' in flight on {kind} '{ident}'.",
                param="reservation",
                code="reservation_not_found",
            )
        member, expiry = released

        async def undo() -> None:
            await store.restore(team, kind, ident, member, expiry)

        nano = int(member.rpartition("|")[2])
        return Change(team, ident, {"reservation": rid, "reserved_usd": nano_to_usd(nano)}, undo)


def _forecast(remaining: int | None, burn: int, now: datetime, end: datetime | None) -> dict[str, Any]:
    """When the remaining budget runs out at the last hour's burn rate. Compared in seconds
    before any datetime is built: a large budget over a small burn is years away."""
    if remaining is None:
        return {"runs_out_at": None, "forecast": "no budget"}
    if remaining <= 0:
        return {"runs_out_at": _iso(now), "forecast": "exhausted"}
    if burn <= 0:
        return {"runs_out_at": None, "forecast": "no spend in the last hour"}
    seconds = remaining / burn * 3600
    if end is not None and seconds >= (end - now).total_seconds():
        return {"runs_out_at": None, "forecast": "lasts until reset"}
    if seconds > _HORIZON_S:
        return {"runs_out_at": None, "forecast": "lasts more than 10 years at this rate"}
    at = now + timedelta(seconds=seconds)
    return {"runs_out_at": _iso(at), "forecast": f"runs out in {_human(at - now)}"}


def _human(delta: timedelta) -> str:
    minutes = int(delta.total_seconds() // 60)
    if minutes < 60:
        return f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h{minutes:02d}m"
    return f"{hours // 24}d{hours % 24}h"


def _override_view(ov: dict[str, Any]) -> dict[str, Any]:
    view: dict[str, Any] = {}
    budgets = {w: (None if ov[w] is None else nano_to_usd(ov[w])) for w in WINDOWS if w in ov}
    if budgets:
        view["budget_usd"] = budgets
    for field, value in ov.items():
        api = _STORE_TO_API.get(field)
        if api is not None:
            view[api] = nano_to_usd(value) if api.endswith("_usd") and value is not None else value
    return view
