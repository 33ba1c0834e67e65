"""``RedisStore``: limits shared by every replica, one Lua script (one round trip) per operation.

One ``redis.asyncio`` connection pool lives for the app's lifespan (``close()`` at shutdown).
Scripts are loaded once (``SCRIPT LOAD`` at ``start()``) and called with ``EVALSHA``; a
``NOSCRIPT`` answer (Redis restarted or failed over, script cache flushed) loads the script
again and retries once, which is safe because a script that was not found did not run.
redis-py's own retries are off: a reserve whose answer was lost must not be sent twice (its
lease expires instead), and a slow Redis must fail fast so ``on_store_error`` can act.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import orjson
from redis.exceptions import RedisError

from gateway import redisconn
from gateway.limits import lua, lua_admin, lua_leases
from gateway.limits.resp import FastRedis, RespConnectionError, RespError, bulk, encode
from gateway.limits.resp_cluster import ClusterFastRedis
from gateway.limits.store import (
    BUDGET,
    OVERRIDE_FIELDS,
    BudgetInfo,
    Denial,
    KeySpace,
    Lease,
    RateInfo,
    RepriceResult,
    Reservation,
    ReserveRequest,
    ReserveResult,
    ScopeState,
    SettleResult,
    StoreError,
)
from gateway.limits.windows import day_id, month_id
from gateway.limits.wire import Wire, evalsha, json_args

Clock = Callable[[], float]


def _opt(v: int | None) -> int:
    return -1 if v is None else v


def _rate(s: str) -> RateInfo | None:
    if not s:
        return None
    limit, remaining, reset = s.split(",")
    return RateInfo(int(limit), int(remaining), int(reset))


def _budgets(s: str) -> tuple[BudgetInfo, ...]:
    if not s:
        return ()
    out = []
    for part in s.split(";"):
        i, window, budget, remaining = part.split(",")
        out.append(BudgetInfo(int(i), window, int(budget), int(remaining)))
    return tuple(out)


def _denial(s: str) -> Denial | None:
    if not s:
        return None
    reason, i, limit, retry, window = s.split(",")
    return Denial(reason, int(i), int(limit), int(retry), window or None)


class _Script:
    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()


class RedisStore:
    name = "redis"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "wg",
        lease_s: float = 30.0,
        settled_ttl_s: float = 600.0,
        window_s: float = 60.0,
        timeout_s: float = 2.0,
        pool_size: int = 64,
        expired: str = "book",
        clock: Clock | None = None,
        mode: str = "standalone",
    ) -> None:
        self._redis = redisconn.client(
            url,
            mode,
            timeout_s=timeout_s,
            decode_responses=True,
            max_connections=pool_size,
            blocking_timeout_s=timeout_s,
        )
        #: The hot path (EVALSHA, SCRIPT LOAD) goes through the lean pipelined client (one per
        #: primary on a cluster, routed by the team's hash tag: see ``resp_cluster``).
        self._fast: FastRedis | ClusterFastRedis = (
            ClusterFastRedis(url, timeout_s=timeout_s)
            if mode == "cluster"
            else FastRedis(url, timeout_s=timeout_s)
        )
        self.keys = KeySpace(prefix)
        self._wire = Wire(self.keys)
        self._lease_ms = int(lease_s * 1000)
        self._settled_ms = int(settled_ttl_s * 1000)
        self._window_ms = int(window_s * 1000)
        self._clock = clock
        #: limits.expired_reservations: book = a lapsed lease is booked as spent, and marked for
        #: ``settled_ttl_s`` (``keep_ms``: a late settle books only the excess); release = freed.
        self._book = expired == "book"
        self._keep_ms = self._settled_ms if self._book else 0
        self._reserve = _Script(lua.RESERVE)
        self._settle = _Script(lua.SETTLE)
        self._inspect = _Script(lua_admin.INSPECT)
        self._set_override = _Script(lua_admin.SET_OVERRIDE)
        self._renew = _Script(lua_leases.RENEW)
        self._reprice = _Script(lua_leases.REPRICE)
        self._leases = _Script(lua_admin.LEASES)
        self._release = _Script(lua_admin.RELEASE)
        self._restore = _Script(lua_admin.RESTORE)
        #: Commands sent to Redis (EVALSHA, and SCRIPT LOAD on NOSCRIPT): the round-trip count.
        self.round_trips = 0

    def _now_arg(self) -> int:
        return -1 if self._clock is None else round(self._clock() * 1000)

    async def start(self) -> None:
        """Load the scripts once; a failure here is reported, calls will retry via NOSCRIPT."""
        for script in (
            self._reserve,
            self._settle,
            self._inspect,
            self._set_override,
            self._renew,
            self._reprice,
            self._leases,
            self._release,
            self._restore,
        ):
            await self._load(script)

    async def _load(self, script: _Script) -> None:
        self.round_trips += 1
        try:
            sha = await self._fast.execute("SCRIPT", "LOAD", script.source)
        except (RespError, RespConnectionError) as exc:
            raise StoreError(f"redis: {exc}") from exc
        if sha != script.sha:
            raise StoreError(f"Redis returned sha {sha} for a script we hashed as {script.sha}")

    async def _eval(self, script: _Script, keys: list[str], args: list[Any]) -> Any:
        """Off the hot path: a script call from plain strings."""
        return await self._dispatch(script, encode(("EVALSHA", script.sha, len(keys), *keys, *args)))

    def _dispatch(self, script: _Script, payload: bytes) -> Awaitable[Any]:
        """Write a pre-encoded EVALSHA now (see ``FastRedis.dispatch``); the awaitable is its
        reply. On NOSCRIPT the script is loaded and the command sent once more."""
        self.round_trips += 1
        return self._reply(script, payload, self._fast.dispatch(payload))

    async def _reply(self, script: _Script, payload: bytes, reply: Awaitable[Any]) -> Any:
        try:
            try:
                return await reply
            except RespError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                await self._load(script)
                self.round_trips += 1
                return await self._fast.execute_encoded(payload)
        except (RespError, RespConnectionError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"redis: {exc}") from exc

    async def reserve(self, req: ReserveRequest) -> ReserveResult:
        team = self._wire.team(req.team)
        wires = self._wire.scopes(req.team, req.scopes)
        head: list[object] = [
            self._now_arg(),
            req.rid,
            self._lease_ms,
            req.est_nano,
            req.est_tokens,
            self._window_ms,
            self._keep_ms,
            req.run_index + 1,
            req.team_index + 1,
            _opt(req.max_calls),
            _opt(req.max_identical),
            _opt(req.max_run_cost_nano),
            req.fingerprint or "",
            len(wires),
        ]
        keys = [team.cfg, *(w.keys for w in wires)]
        parts = [*(w.reserve_arg for w in wires), *((b"1",) if req.budget_only else ())]
        payload = evalsha(self._reserve.sha, keys, 1 + 3 * len(wires), json_args(head, parts))
        r = await self._dispatch(self._reserve, payload)
        flags = r[3]
        return ReserveResult(
            ok=r[0] == 1,
            now_ms=int(r[1]),
            denial=_denial(r[2]) if r[2] else None,
            flags=tuple(map(int, flags.split(","))) if flags else (),
            requests=_rate(r[4]),
            tokens=_rate(r[5]),
            budgets=_budgets(r[6]),
            run_calls=r[7],
            run_spent_nano=int(r[8]),
            run_repeats=r[9],
            lapsed_booked_nano=int(r[10]),
        )

    async def settle(self, res: Reservation, actual_nano: int, actual_tokens: int) -> SettleResult:
        return await self.begin_settle(res, actual_nano, actual_tokens)

    def begin_settle(self, res: Reservation, actual_nano: int, actual_tokens: int) -> Awaitable[SettleResult]:
        team = self._wire.team(res.team)
        wires = self._wire.scopes(res.team, res.scopes)
        head: list[object] = [
            self._now_arg(),
            res.rid,
            res.est_nano,
            actual_nano,
            res.est_tokens,
            actual_tokens,
            self._settled_ms,
            self._window_ms,
            res.arrival_ms,
            len(wires),
        ]
        parts = [b"%d,%s" % (flag, w.settle_arg) for w, flag in zip(wires, res.flags, strict=True)]
        keys = [bulk((team.record + res.rid).encode()), team.idx, *(w.keys for w in wires)]
        payload = evalsha(self._settle.sha, keys, 2 + 3 * len(wires), json_args(head, parts))
        return _settle_result(self._dispatch(self._settle, payload))

    async def renew(self, reservations: Sequence[Reservation]) -> int:
        # One script per team (a team is one cluster slot), all written at once on the one
        # pipelined connection: one round trip for every call this worker has in flight.
        by_team: dict[str, list[Reservation]] = {}
        for res in reservations:
            if res.has_lease and not res.settled:
                by_team.setdefault(res.team, []).append(res)
        if not by_team:
            return 0
        now = self._now_arg()
        payloads = []
        for team, group in by_team.items():
            keys: list[bytes] = []
            head: list[object] = [now, self._lease_ms]
            for res in group:
                leased = [
                    w.lease_key
                    for w, f in zip(self._wire.scopes(team, res.scopes), res.flags, strict=True)
                    if f & BUDGET
                ]
                keys += leased
                head += (len(leased), res.lease_member)
            payloads.append(evalsha(self._renew.sha, keys, len(keys), json_args(head, ())))
        held = await asyncio.gather(*(self._dispatch(self._renew, p) for p in payloads))
        return sum(held)

    async def reprice(self, res: Reservation, new_est_nano: int) -> RepriceResult:
        team = self._wire.team(res.team)
        wires = self._wire.scopes(res.team, res.scopes)
        head: list[object] = [
            self._now_arg(),
            res.rid,
            res.est_nano,
            new_est_nano,
            self._lease_ms,
            res.run_index + 1,
            res.team_index + 1,
            _opt(res.max_run_cost_nano),
            len(wires),
            self._keep_ms,
        ]
        parts = [b"%d,%s" % (flag, w.reserve_arg) for w, flag in zip(wires, res.flags, strict=True)]
        payload = evalsha(
            self._reprice.sha,
            [team.cfg, *(w.keys for w in wires)],
            1 + 3 * len(wires),
            json_args(head, parts),
        )
        r = await self._dispatch(self._reprice, payload)
        return RepriceResult(
            ok=r[0] == 1,
            denial=_denial(r[1]) if r[1] else None,
            remaining_nano=int(r[2]) if r[2] else None,
            booked_nano=int(r[3]),
            lapsed_booked_nano=int(r[4]),
        )

    async def scope_state(self, team: str, kind: str, ident: str) -> ScopeState:
        base = self.keys.scope(team, kind, ident)
        field = f"{kind}:{ident}"
        r = await self._eval(
            self._inspect, [self.keys.cfg(team), base + ":h", base + ":l"], [self._now_arg(), field]
        )
        now, expired, raw_override, flat = int(r[0]), int(r[1]), r[2], r[3]
        h = dict(zip(flat[::2], flat[1::2], strict=True))
        day = day_id(now)
        spent = {
            "day": int(h.get("d", 0)) if int(h.get("dk", -1)) == day else 0,
            "month": int(h.get("m", 0)) if int(h.get("mk", -1)) == month_id(day) else 0,
            "total": int(h.get("t", 0)),
        }
        if self._book:  # lapsed leases not purged yet: the next operation books them
            spent = {w: v + expired for w, v in spent.items()}
        minute = now // 60_000
        burn = 0
        for k, v in h.items():
            if k[0] == "b" and k[1:].isdigit():
                m, _, amount = v.partition(":")
                if minute - int(m) < 60:
                    burn += int(amount)
        override = _decode_override(raw_override) if raw_override else {}
        return ScopeState(now, int(h.get("r", 0)) - expired, spent, burn, override, int(h.get("calls", 0)))

    async def set_override(
        self, team: str, kind: str, ident: str, section: str, values: dict[str, int | None]
    ) -> dict[str, Any]:
        encoded = orjson.dumps({k: (None if v is None else str(v)) for k, v in values.items()})
        r = await self._eval(
            self._set_override,
            [self.keys.cfg(team)],
            [f"{kind}:{ident}", ",".join(OVERRIDE_FIELDS[section]), encoded],
        )
        return _decode_override(r)

    async def leases(self, team: str, kind: str, ident: str, limit: int = 1000) -> tuple[int, list[Lease]]:
        r = await self._eval(
            self._leases, [self.keys.scope(team, kind, ident) + ":l"], [self._now_arg(), limit]
        )
        return int(r[0]), [Lease.of(m, int(float(score))) for m, score in zip(r[1::2], r[2::2], strict=True)]

    async def release(self, team: str, kind: str, ident: str, rid: str) -> tuple[str, int] | None:
        base = self.keys.scope(team, kind, ident)
        r = await self._eval(self._release, [base + ":h", base + ":l"], [rid])
        return (r[0], int(float(r[1]))) if r else None

    async def restore(self, team: str, kind: str, ident: str, member: str, score: int) -> None:
        base = self.keys.scope(team, kind, ident)
        await self._eval(self._restore, [base + ":h", base + ":l"], [member, score])

    async def list_scopes(self, team: str, kind: str, limit: int = 1000) -> list[str]:
        try:
            self.round_trips += 1
            # Settle prunes the index only when it grows: filter out what it has not pruned yet.
            oldest = round((self._clock or time.time)() * 1000) - lua.IDX_KEEP_MS
            members = await self._redis.zrevrangebyscore(
                self.keys.idx(team), "+inf", oldest, start=0, num=10_001
            )
        except RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc
        prefix = kind + ":"
        # decode_responses=True: members are str.
        return [m[len(prefix) :] for m in members if isinstance(m, str) and m.startswith(prefix)][:limit]

    async def ping(self) -> None:
        try:
            await self._redis.ping()
        except (RedisError, OSError) as exc:
            raise StoreError(f"redis unreachable: {exc}") from exc

    async def close(self) -> None:
        await self._fast.close()
        await self._redis.aclose()

    async def delete_prefix(self) -> int:
        """Delete every key under this store's prefix (tests and benchmarks clean up with it)."""
        n = 0
        async for key in self._redis.scan_iter(match=self.keys.prefix + ":*", count=1000):
            n += await self._redis.unlink(key)
        return n


async def _settle_result(reply: Awaitable[Any]) -> SettleResult:
    r = await reply
    return SettleResult(applied=r[0] == 1, late=r[1] == 1)


def _decode_override(raw: str) -> dict[str, Any]:
    obj = orjson.loads(raw)
    return {k: (None if v is None else int(v)) for k, v in obj.items()}
