"""The admin operations of ``MemoryStore`` (read a scope, set its overrides, list and release
its reservations in flight): the same results as the Redis admin scripts (``lua_admin.py``).
"""

from __future__ import annotations

from typing import Any

from gateway.limits.engine import BURN_SLOTS, minute_of
from gateway.limits.memory_model import Scope, weight
from gateway.limits.store import OVERRIDE_FIELDS, Lease, ScopeState
from gateway.limits.windows import WINDOWS, day_id, month_id


class MemoryAdmin:
    """Mixed into ``MemoryStore``, whose state it reads and edits."""

    _scopes: dict[tuple[str, str], Scope]
    _cfg: dict[str, dict[str, dict[str, Any]]]
    _idx: dict[str, dict[str, int]]
    _book: bool

    def _now(self) -> int:
        raise NotImplementedError

    def _scope(self, team: str, field_: str, now: int, retention_ms: int = 0) -> Scope:
        raise NotImplementedError

    def _spent(self, sc: Scope, day: int, month: int) -> tuple[int, int, int]:
        raise NotImplementedError

    async def scope_state(self, team: str, kind: str, ident: str) -> ScopeState:
        now = self._now()
        field_ = f"{kind}:{ident}"
        sc = self._scopes.get((team, field_))
        override = dict(self._cfg.get(team, {}).get(field_) or {})
        if sc is None or (sc.expires_ms and sc.expires_ms <= now):
            return ScopeState(now, 0, dict.fromkeys(WINDOWS, 0), 0, override)
        # Read-only, like the Redis INSPECT: lapsed leases are subtracted (and, with ``book``,
        # shown as spent), not purged; the next operation on the scope books them.
        expired = sum(weight(m) for score, m in sc.leases if score <= now)
        day = day_id(now)
        d, m, t = self._spent(sc, day, month_id(day))
        if self._book:
            d, m, t = d + expired, m + expired, t + expired
        minute = minute_of(now)
        burn = sum(
            v[1] for k, v in sc.h.items() if k[0] == "b" and k[1:].isdigit() and minute - v[0] < BURN_SLOTS
        )
        return ScopeState(
            now,
            sc.h.get("r", 0) - expired,
            {"day": d, "month": m, "total": t},
            burn,
            override,
            sc.h.get("calls", 0),
        )

    async def set_override(
        self, team: str, kind: str, ident: str, section: str, values: dict[str, int | None]
    ) -> dict[str, Any]:
        cfg = self._cfg.setdefault(team, {})
        field_ = f"{kind}:{ident}"
        current = {k: v for k, v in (cfg.get(field_) or {}).items() if k not in OVERRIDE_FIELDS[section]}
        current.update(values)
        if current:
            cfg[field_] = current
        else:
            cfg.pop(field_, None)
        return dict(current)

    async def list_scopes(self, team: str, kind: str, limit: int = 1000) -> list[str]:
        prefix = kind + ":"
        seen = sorted(
            ((ts, f) for f, ts in self._idx.get(team, {}).items() if f.startswith(prefix)), reverse=True
        )
        return [f[len(prefix) :] for _, f in seen[:limit]]

    async def leases(self, team: str, kind: str, ident: str, limit: int = 1000) -> tuple[int, list[Lease]]:
        now = self._now()
        sc = self._scopes.get((team, f"{kind}:{ident}"))
        if sc is None:
            return now, []
        return now, [Lease.of(m, score) for score, m in sc.leases if score > now][:limit]

    async def release(self, team: str, kind: str, ident: str, rid: str) -> tuple[str, int] | None:
        sc = self._scopes.get((team, f"{kind}:{ident}"))
        if sc is None:
            return None
        for score, m in sc.leases:
            if m.rpartition("|")[0] == rid:
                sc.leases.remove(m)
                sc.h["r"] = sc.h.get("r", 0) - weight(m)
                return m, score
        return None

    async def restore(self, team: str, kind: str, ident: str, member: str, score: int) -> None:
        sc = self._scope(team, f"{kind}:{ident}", self._now())
        if member not in sc.leases.scores:
            sc.leases.add(score, member)
            sc.h["r"] = sc.h.get("r", 0) + weight(member)
