"""``MemoryStore``: the embedded default, the same semantics as ``RedisStore`` in one process.

Each operation is one synchronous function with no ``await`` inside, so under asyncio it is
atomic exactly like the Lua script is in Redis. The data model mirrors the Redis one (a hash
and two sorted logs per scope), which is what lets one test suite run against both.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from gateway.limits.engine import (
    BURN_SLOTS,
    RESERVED_RETRY_MS,
    budget_limits,
    denial_priority,
    effective_limits,
    minute_of,
    pick_rate_info,
    run_cost_limit,
)
from gateway.limits.memory_admin import MemoryAdmin
from gateway.limits.memory_model import Scope as _Scope
from gateway.limits.memory_model import held_member as _held_member
from gateway.limits.memory_model import marked as _marked
from gateway.limits.memory_model import weight as _weight
from gateway.limits.store import (
    BUDGET,
    RATE,
    BudgetInfo,
    Denial,
    RateInfo,
    RepriceResult,
    Reservation,
    ReserveRequest,
    ReserveResult,
    SettleResult,
)
from gateway.limits.windows import WINDOWS, day_id, month_id

Clock = Callable[[], float]


class MemoryStore(MemoryAdmin):
    name = "memory"

    def __init__(
        self,
        *,
        lease_s: float = 30.0,
        settled_ttl_s: float = 600.0,
        window_s: float = 60.0,
        expired: str = "book",
        clock: Clock | None = None,
    ) -> None:
        self._lease_ms = int(lease_s * 1000)
        #: limits.expired_reservations: a lapsed lease is booked as spent (and marked for
        #: ``settled_ttl_s``, see ``lua.lapse``), or released.
        self._book = expired == "book"
        self._settled_ms = int(settled_ttl_s * 1000)
        self._window_ms = int(window_s * 1000)
        self._clock = clock or time.time
        self._scopes: dict[tuple[str, str], _Scope] = {}
        self._cfg: dict[str, dict[str, dict[str, Any]]] = {}
        self._records: dict[tuple[str, str], tuple[str, int]] = {}
        self._idx: dict[str, dict[str, int]] = {}
        self._ops = 0

    def _now(self) -> int:
        return round(self._clock() * 1000)

    def _scope(self, team: str, field_: str, now: int, retention_ms: int = 0) -> _Scope:
        key = (team, field_)
        sc = self._scopes.get(key)
        if sc is None or (sc.expires_ms and sc.expires_ms <= now):
            sc = self._scopes[key] = _Scope()
        if retention_ms:
            sc.expires_ms = now + retention_ms
        return sc

    def _purge_leases(self, sc: _Scope, now: int) -> int:
        """Drop lapsed leases; with ``book``, book their amounts as spent (see ``lua.lapse``).
        Returns the amount booked."""
        booked = 0
        until = now + self._settled_ms
        for _, m in sc.leases.pop_until(now):
            w = _weight(m)
            sc.h["r"] = sc.h.get("r", 0) - w
            if self._book and w > 0:  # a second lapse (after a re-price) adds up
                key = "x:" + m.rpartition("|")[0]
                sc.h[key] = (_marked(sc.h.get(key)) + w, until)
                booked += w
        if booked:
            _book(sc.h, booked, now)
            sc.h.setdefault("xt", until)
        return booked

    def _prune_marks(self, h: dict[str, Any], now: int) -> None:
        """Drop the marks of lapsed leases whose time is up (see ``lua.prune_marks``)."""
        due = h.get("xt")
        if due is None or due > now:
            return
        gone = [k for k, v in h.items() if k.startswith("x:") and v[1] <= now]
        for k in gone:
            del h[k]
        if any(k.startswith("x:") for k in h):
            h["xt"] = now + max(self._settled_ms // 4, 1000)
        else:
            h.pop("xt", None)

    def _purge_window(self, sc: _Scope, now: int) -> None:
        for _, m in sc.window.pop_until(now - self._window_ms):
            sc.h["tw"] = sc.h.get("tw", 0) - _weight(m)

    def _spent(self, sc: _Scope, day: int, month: int) -> tuple[int, int, int]:
        h = sc.h
        d = h.get("d", 0) if h.get("dk") == day else 0
        m = h.get("m", 0) if h.get("mk") == month else 0
        return d, m, h.get("t", 0)

    # -- reserve ---------------------------------------------------------------------------

    async def reserve(self, req: ReserveRequest) -> ReserveResult:
        self._maybe_sweep()
        now = self._now()
        day = day_id(now)
        month = month_id(day)
        cfg = self._cfg.get(req.team, {})
        eff, max_calls, max_identical = effective_limits(req, [cfg.get(s.field) for s in req.scopes])
        if req.budget_only:  # budgets and the run's cost cap only
            eff = [(None, None, budgets, None) for _, _, budgets, _ in eff]
            max_calls = max_identical = None
        scopes = [self._scope(req.team, s.field, now, s.retention_ms) for s in req.scopes]
        denials: list[Denial] = []
        run_calls = run_spent = run_repeats = 0
        if req.run_index >= 0:
            rh = scopes[req.run_index].h
            run_calls = rh.get("calls", 0)
            run_spent = rh.get("t", 0)
            if max_calls is not None and run_calls + 1 > max_calls:
                denials.append(Denial("calls", req.run_index, max_calls))
            if req.fingerprint:
                run_repeats = rh.get("f:" + req.fingerprint, 0)
                if max_identical is not None and run_repeats + 1 > max_identical:
                    denials.append(Denial("loop", req.run_index, max_identical))
        budgets: list[BudgetInfo] = []
        req_infos: list[RateInfo] = []
        tok_infos: list[RateInfo] = []
        flags: list[int] = []
        lapsed = 0
        for i, (sc, (rpm, tpm, blimits, concurrent)) in enumerate(zip(scopes, eff, strict=True)):
            flag = 0
            has_budget = any(b is not None for b in blimits)
            if has_budget or concurrent is not None:
                flag |= BUDGET  # holds a lease per call in flight
                lapsed += self._purge_leases(sc, now)
                self._prune_marks(sc.h, now)
            if has_budget:
                reserved = sc.h.get("r", 0)
                spent = self._spent(sc, day, month)
                best: BudgetInfo | None = None
                for w, limit, s in zip(WINDOWS, blimits, spent, strict=True):
                    if limit is None:
                        continue
                    remaining = limit - s - reserved
                    if req.est_nano > remaining:
                        if req.est_nano <= limit - s:  # only the calls in flight stand in the way
                            denials.append(Denial("reserved", i, limit, RESERVED_RETRY_MS, window=w))
                        else:
                            denials.append(Denial("budget", i, limit, window=w))
                    if best is None or remaining < best.remaining_nano:
                        best = BudgetInfo(i, w, limit, remaining)
                if best is not None:
                    budgets.append(best)
            if concurrent is not None and len(sc.leases) + 1 > concurrent:
                denials.append(Denial("concurrent", i, concurrent, RESERVED_RETRY_MS))
            if rpm is not None or tpm is not None:
                flag |= RATE
                self._purge_window(sc, now)
                count = len(sc.window)
                tw = sc.h.get("tw", 0)
                oldest = sc.window.score_at(0) if count else now
                reset = oldest + self._window_ms - now
                if rpm is not None:
                    if count + 1 > rpm:
                        k = count - rpm  # the entry whose expiry brings count below rpm
                        retry = sc.window.score_at(k) + self._window_ms - now if k < count else -1
                        denials.append(Denial("requests", i, rpm, retry if retry < 0 else max(retry, 1)))
                    req_infos.append(RateInfo(rpm, rpm - count - 1, reset))
                if tpm is not None:
                    if req.est_tokens > tpm:
                        denials.append(Denial("too_large", i, tpm))
                    elif tw + req.est_tokens > tpm:
                        need = tw + req.est_tokens - tpm
                        retry = -1
                        for score, m in sc.window:
                            need -= _weight(m)
                            if need <= 0:
                                retry = score + self._window_ms - now
                                break
                        denials.append(Denial("tokens", i, tpm, retry if retry < 0 else max(retry, 1)))
                    tok_infos.append(RateInfo(tpm, tpm - tw - req.est_tokens, reset))
            flags.append(flag)
        result = ReserveResult(
            ok=not denials,
            now_ms=now,
            requests=pick_rate_info(req_infos),
            tokens=pick_rate_info(tok_infos),
            budgets=tuple(budgets),
            flags=tuple(flags),
            run_calls=run_calls,
            run_spent_nano=run_spent,
            run_repeats=run_repeats,
            lapsed_booked_nano=lapsed,
        )
        if denials:
            result.denial = denial_priority(denials)
            return result
        # Commit: nothing above changed a counter except expiry purges.
        for sc, flag in zip(scopes, flags, strict=True):
            if flag & RATE:
                sc.window.add(now, f"{req.rid}|{req.est_tokens}")
                sc.h["tw"] = sc.h.get("tw", 0) + req.est_tokens
            if flag & BUDGET:
                sc.leases.add(now + self._lease_ms, f"{req.rid}|{req.est_nano}")
                sc.h["r"] = sc.h.get("r", 0) + req.est_nano
        if req.run_index >= 0 and not req.budget_only:
            rh = scopes[req.run_index].h
            rh["calls"] = run_calls + 1
            result.run_calls = run_calls + 1
            if req.fingerprint:
                rh["f:" + req.fingerprint] = run_repeats + 1
        return result

    # -- settle ----------------------------------------------------------------------------

    async def settle(self, res: Reservation, actual_nano: int, actual_tokens: int) -> SettleResult:
        return self._settle(res, actual_nano, actual_tokens)

    def begin_settle(self, res: Reservation, actual_nano: int, actual_tokens: int) -> Awaitable[SettleResult]:
        """Settled at once (in process, nothing to wait for)."""
        return _ready(self._settle(res, actual_nano, actual_tokens))

    def _settle(self, res: Reservation, actual_nano: int, actual_tokens: int) -> SettleResult:
        now = self._now()
        rec = self._records.get((res.team, res.rid))
        if rec is not None and rec[0] == "S" and rec[1] > now:
            return SettleResult(applied=False)
        self._records[(res.team, res.rid)] = ("S", now + self._settled_ms)
        late = False
        idx = self._idx.setdefault(res.team, {})
        for spec, flag in zip(res.scopes, res.flags, strict=True):
            sc = self._scope(res.team, spec.field, now, spec.retention_ms)
            h = sc.h
            mark = h.get("x:" + res.rid)
            self._prune_marks(h, now)
            if flag & RATE and sc.window.remove(f"{res.rid}|{res.est_tokens}"):
                if res.arrival_ms > now - self._window_ms:
                    sc.window.add(res.arrival_ms, f"{res.rid}|{actual_tokens}")
                    h["tw"] = h.get("tw", 0) + actual_tokens - res.est_tokens
                else:
                    h["tw"] = h.get("tw", 0) - res.est_tokens
            act = actual_nano
            if flag & BUDGET:
                member = _held_member(res.rid, res.est_nano, _marked(mark))
                if sc.leases.remove(member):
                    h["r"] = h.get("r", 0) - _weight(member)
                else:
                    late = True
                if mark is not None:  # a lapse was booked already: only the excess is due
                    h.pop("x:" + res.rid, None)
                    act = max(act - mark[0], 0)
            _book(h, act, now)
            idx[spec.field] = now
        return SettleResult(applied=True, late=late)

    # -- lease renewal and re-price ----------------------------------------------------------

    async def renew(self, reservations: Sequence[Reservation]) -> int:
        now = self._now()
        expiry = now + self._lease_ms
        held = 0
        for res in reservations:
            if res.settled or not res.has_lease:
                continue
            member, renewed = res.lease_member, True
            for spec, flag in zip(res.scopes, res.flags, strict=True):
                if not flag & BUDGET:
                    continue
                sc = self._scopes.get((res.team, spec.field))
                score = sc.leases.scores.get(member) if sc is not None else None
                if sc is not None and score is not None and score > now:
                    sc.leases.add(expiry, member)
                else:
                    renewed = False
            held += renewed
        return held

    async def reprice(self, res: Reservation, new_est_nano: int) -> RepriceResult:
        now = self._now()
        day = day_id(now)
        month = month_id(day)
        cfg = self._cfg.get(res.team, {})
        overrides = [cfg.get(s.field) for s in res.scopes]
        run_cost = run_cost_limit(overrides, res.team_index, res.max_run_cost_nano)
        denial: Denial | None = None
        least: int | None = None
        max_booked = lapsed = 0
        plan: list[tuple[_Scope, int | None, int, str, str]] = []
        for i, (spec, flag, ov) in enumerate(zip(res.scopes, res.flags, overrides, strict=True)):
            if not flag & BUDGET:
                continue
            sc = self._scope(res.team, spec.field, now)
            lapsed += self._purge_leases(sc, now)
            booked = _marked(sc.h.get("x:" + res.rid))
            max_booked = max(max_booked, booked)
            old_m = _held_member(res.rid, res.est_nano, booked)
            new_m = _held_member(res.rid, new_est_nano, booked)
            score = sc.leases.scores.get(old_m)
            held = _weight(old_m) if score is not None else 0
            need = _weight(new_m) - held
            reserved = sc.h.get("r", 0)
            limits = budget_limits(spec, ov, run_cost if i == res.run_index else None)
            for w, limit, spent in zip(WINDOWS, limits, self._spent(sc, day, month), strict=True):
                if limit is None:
                    continue
                remaining = limit - spent - reserved
                if need > 0 and need > remaining and (denial is None or denial.reason == "reserved"):
                    if new_est_nano - booked <= limit - spent:  # only the calls in flight stand in the way
                        denial = denial or Denial("reserved", i, limit, RESERVED_RETRY_MS, window=w)
                    else:
                        denial = Denial("budget", i, limit, window=w)
                least = remaining - need if least is None else min(least, remaining - need)
            plan.append((sc, score, held, old_m, new_m))
        if denial is not None:
            return RepriceResult(ok=False, denial=denial, lapsed_booked_nano=lapsed)
        for sc, score, held, old_m, new_m in plan:
            if score is not None:
                sc.leases.remove(old_m)
            sc.leases.add(now + self._lease_ms if score is None else score, new_m)
            sc.h["r"] = sc.h.get("r", 0) - held + _weight(new_m)
        return RepriceResult(ok=True, remaining_nano=least, booked_nano=max_booked, lapsed_booked_nano=lapsed)

    async def ping(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def _maybe_sweep(self) -> None:
        """Drop expired records and scopes now and then, so one process's memory stays bounded."""
        self._ops += 1
        if self._ops % 4096:
            return
        now = self._now()
        self._records = {k: v for k, v in self._records.items() if v[1] > now}
        self._scopes = {k: v for k, v in self._scopes.items() if not v.expires_ms or v.expires_ms > now}


def _book(h: dict[str, Any], amount: int, now: int) -> None:
    """Add ``amount`` to a scope's day, month and total spend and to its burn ring."""
    day = day_id(now)
    month = month_id(day)
    minute = minute_of(now)
    if h.get("dk") != day:
        h["dk"], h["d"] = day, 0
    if h.get("mk") != month:
        h["mk"], h["m"] = month, 0
    h["d"] += amount
    h["m"] += amount
    h["t"] = h.get("t", 0) + amount
    slot = f"b{minute % BURN_SLOTS}"
    prev = h.get(slot)
    h[slot] = (minute, prev[1] + amount if prev and prev[0] == minute else amount)


async def _ready(result: SettleResult) -> SettleResult:
    return result
