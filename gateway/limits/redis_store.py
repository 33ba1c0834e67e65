"""``RedisStore``: limits shared by every replica, one Lua script (one round trip) per operation.

One ``redis.asyncio`` connection pool lives for the app's lifespan (``close()`` at shutdown).
Scripts are loaded once (``SCRIPT LOAD`` at ``start()``) and called with ``EVALSHA``; a
``NOSCRIPT`` answer (Redis restarted or failed over, script cache flushed) loads the script
again and retries once, which is safe because a script that was not found did not run.
redis-py's own retries are off: a reserve whose answer was lost must not be sent twice (its
lease expires instead), and a slow Redis must fail fast so ``on_store_error`` can act.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from gateway.limits import lua
from gateway.limits.resp import FastRedis, RespConnectionError, RespError
from gateway.limits.store import (
    OVERRIDE_FIELDS,
    BudgetInfo,
    Denial,
    KeySpace,
    RateInfo,
    Reservation,
    ReserveRequest,
    ReserveResult,
    ScopeState,
    SettleResult,
    StoreError,
)
from gateway.limits.windows import day_id, month_id

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
        lease_s: float = 600.0,
        settled_ttl_s: float = 86400.0,
        window_s: float = 60.0,
        timeout_s: float = 2.0,
        pool_size: int = 64,
        clock: Clock | None = None,
    ) -> None:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=pool_size,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            decode_responses=True,
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = aioredis.Redis(connection_pool=pool)
        #: The hot path (EVALSHA, SCRIPT LOAD) goes through the lean pipelined client.
        self._fast = FastRedis(url, timeout_s=timeout_s)
        self.keys = KeySpace(prefix)
        self._lease_ms = int(lease_s * 1000)
        self._settled_ms = int(settled_ttl_s * 1000)
        self._window_ms = int(window_s * 1000)
        self._clock = clock
        self._reserve = _Script(lua.RESERVE)
        self._settle = _Script(lua.SETTLE)
        self._inspect = _Script(lua.INSPECT)
        self._set_override = _Script(lua.SET_OVERRIDE)
        #: Commands sent to Redis (EVALSHA, and SCRIPT LOAD on NOSCRIPT): the round-trip count.
        self.round_trips = 0

    def _now_arg(self) -> int:
        return -1 if self._clock is None else round(self._clock() * 1000)

    async def start(self) -> None:
        """Load the scripts once; a failure here is reported, calls will retry via NOSCRIPT."""
        for script in (self._reserve, self._settle, self._inspect, self._set_override):
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
        try:
            try:
                self.round_trips += 1
                return await self._fast.execute("EVALSHA", script.sha, len(keys), *keys, *args)
            except RespError as exc:
                if not str(exc).startswith("NOSCRIPT"):
                    raise
                await self._load(script)
                self.round_trips += 1
                return await self._fast.execute("EVALSHA", script.sha, len(keys), *keys, *args)
        except (RespError, RespConnectionError) as exc:
            raise StoreError(f"redis: {type(exc).__name__}: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"redis: {exc}") from exc

    async def reserve(self, req: ReserveRequest) -> ReserveResult:
        ks = self.keys
        keys = [ks.cfg(req.team), ks.record(req.team, req.rid)]
        args: list[Any] = [
            self._now_arg(),
            req.rid,
            self._lease_ms,
            req.est_nano,
            req.est_tokens,
            self._window_ms,
            self._lease_ms + self._settled_ms,
            req.run_index + 1,
            req.team_index + 1,
            _opt(req.max_calls),
            _opt(req.max_identical),
            _opt(req.max_run_cost_nano),
            req.fingerprint or "",
            len(req.scopes),
        ]
        for s in req.scopes:
            base = ks.scope(req.team, s.kind, s.ident)
            keys += (base + ":h", base + ":l", base + ":w")
            d, m, t = s.budget_nano
            args += (s.field, _opt(s.rpm), _opt(s.tpm), _opt(d), _opt(m), _opt(t), s.retention_ms)
        r = await self._eval(self._reserve, keys, [orjson.dumps(args)])
        return ReserveResult(
            ok=r[0] == 1,
            now_ms=int(r[1]),
            denial=_denial(r[2]),
            flags=tuple(int(f) for f in r[3].split(",")) if r[3] else (),
            requests=_rate(r[4]),
            tokens=_rate(r[5]),
            budgets=_budgets(r[6]),
            run_calls=int(r[7]),
            run_spent_nano=int(r[8]),
            run_repeats=int(r[9]),
        )

    async def settle(self, res: Reservation, actual_nano: int, actual_tokens: int) -> SettleResult:
        ks = self.keys
        keys = [ks.record(res.team, res.rid), ks.idx(res.team)]
        args: list[Any] = [
            self._now_arg(),
            res.rid,
            res.est_nano,
            actual_nano,
            res.est_tokens,
            actual_tokens,
            self._settled_ms,
            self._window_ms,
            res.arrival_ms,
            len(res.scopes),
        ]
        for s, flag in zip(res.scopes, res.flags, strict=True):
            base = ks.scope(res.team, s.kind, s.ident)
            keys += (base + ":h", base + ":l", base + ":w")
            args += (flag, s.retention_ms, s.field)
        r = await self._eval(self._settle, keys, [orjson.dumps(args)])
        return SettleResult(applied=r[0] == 1, late=r[1] == 1)

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
        minute = now // 60_000
        burn = 0
        for k, v in h.items():
            if k[0] == "b" and k[1:].isdigit():
                m, _, amount = v.partition(":")
                if minute - int(m) < 60:
                    burn += int(amount)
        override = _decode_override(raw_override) if raw_override else {}
        return ScopeState(
            now, int(h.get("r", 0)) - expired, spent, burn, override, int(h.get("calls", 0))
        )

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

    async def list_scopes(self, team: str, kind: str, limit: int = 1000) -> list[str]:
        try:
            self.round_trips += 1
            members = await self._redis.zrevrange(self.keys.idx(team), 0, 10_000)
        except RedisError as exc:
            raise StoreError(f"redis: {exc}") from exc
        prefix = kind + ":"
        return [m[len(prefix) :] for m in members if m.startswith(prefix)][:limit]

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


def _decode_override(raw: str) -> dict[str, Any]:
    obj = orjson.loads(raw)
    return {k: (None if v is None else int(v)) for k, v in obj.items()}
