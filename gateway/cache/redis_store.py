"""The Redis store: answers shared by every replica, compressed, expiring on their own.

Keys are ``<prefix>:{<scope>}:<model>:<hash>``: the scope is the hash tag, so on Redis
Cluster every entry of one team (or key) lives in one slot and a purge of that scope scans
one node's keyspace; each command touches one key, so nothing crosses slots. Values are
one marker byte (``z``: zlib, ``r``: raw) and the encoded entry; the lifetime is Redis's
own (``SET … PX``).

A failing Redis is a miss, never a failed call: every command is bounded by
``redis_timeout_s``, and after a failure the store stops asking for ``_BACKOFF_S`` (a Redis
that hangs would otherwise add its timeout to every call); the stage counts each failure
(``wardgate_cache_errors_total``).
"""

from __future__ import annotations

import time
import zlib
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from gateway.cache.key import CacheKey
from gateway.cache.store import CacheStoreError
from gateway.limits.resp import FastRedis, RespConnectionError, RespError

#: How long the store stays away from a Redis that just failed.
_BACKOFF_S = 1.0
_GLOB = str.maketrans({c: f"\\{c}" for c in "*?[]\\"})


class RedisStore:
    name = "redis"

    def __init__(self, url: str, prefix: str, timeout_s: float, compress_min_bytes: int) -> None:
        pool = aioredis.BlockingConnectionPool.from_url(
            url,
            max_connections=32,
            timeout=timeout_s,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
        )
        #: Admin work (SCAN, UNLINK) through redis-py.
        self._redis = aioredis.Redis(connection_pool=pool)
        #: The hot path (GET, SET): the lean pipelined client (redis-py costs ~180 µs of CPU
        #: per command here, more than the rest of a hit).
        self._fast = FastRedis(url, timeout_s=timeout_s, encoding=None)
        self.prefix = prefix
        self._compress_min = compress_min_bytes
        self._down_until = 0.0

    def _key(self, key: CacheKey) -> str:
        return f"{self.prefix}:{{{key.scope}}}:{key.model}:{key.digest}"

    def _check(self) -> None:
        if self._down_until and time.monotonic() < self._down_until:
            raise CacheStoreError("redis recently failed; not asked again yet")

    def _failed(self, exc: Exception) -> CacheStoreError:
        self._down_until = time.monotonic() + _BACKOFF_S
        return CacheStoreError(type(exc).__name__)

    async def get(self, key: CacheKey) -> bytes | None:
        self._check()
        try:
            raw = await self._fast.execute("GET", self._key(key))
        except (RespError, RespConnectionError, OSError, TimeoutError) as exc:
            raise self._failed(exc) from exc
        self._down_until = 0.0
        if not isinstance(raw, bytes) or not raw:
            return None
        marker, data = raw[:1], raw[1:]
        if marker == b"z":
            try:
                return zlib.decompress(data)
            except zlib.error:
                return None
        return data if marker == b"r" else None

    async def put(self, key: CacheKey, value: bytes, ttl_s: float) -> None:
        self._check()
        if len(value) >= self._compress_min:
            stored = b"z" + zlib.compress(value, 6)
        else:
            stored = b"r" + value
        try:
            await self._fast.execute("SET", self._key(key), stored, "PX", max(1, int(ttl_s * 1000)))
        except (RespError, RespConnectionError, OSError, TimeoutError) as exc:
            raise self._failed(exc) from exc

    def _pattern(self, scope: str | None, model: str | None) -> str:
        s = "{" + scope.translate(_GLOB) + "}" if scope is not None else "*"
        m = model.translate(_GLOB) if model is not None else "*"
        return f"{self.prefix.translate(_GLOB)}:{s}:{m}:*"

    async def purge(self, scope: str | None, model: str | None) -> int:
        deleted = 0
        batch: list[Any] = []
        try:
            async for name in self._redis.scan_iter(match=self._pattern(scope, model), count=500):
                batch.append(name)
                if len(batch) >= 500:
                    deleted += await self._redis.unlink(*batch)
                    batch = []
            if batch:
                deleted += await self._redis.unlink(*batch)
        except (RedisError, OSError, TimeoutError) as exc:
            raise CacheStoreError(type(exc).__name__) from exc
        return int(deleted)

    async def stats(self) -> dict[str, Any]:
        entries = 0
        try:
            async for _ in self._redis.scan_iter(match=self._pattern(None, None), count=1000):
                entries += 1
        except (RedisError, OSError, TimeoutError) as exc:
            return {"store": self.name, "error": type(exc).__name__}
        return {"store": self.name, "entries": entries}

    async def close(self) -> None:
        await self._fast.close()
        await self._redis.aclose()
