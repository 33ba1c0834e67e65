"""The semantic index's shared feed: every worker of every replica indexes what any stored.

With the Redis store, an indexed entry is also written to Redis (its vector and what the
index needs, ``<prefix>:vec:{<scope>}:<model>:<hash>``, with the entry's own lifetime) and
announced on the channel ``<prefix>:semantic``. Each worker subscribes, then loads what is
already there (a SCAN of the vector keys: a worker that starts late, or lost its
subscription, catches up), and indexes every announcement, its own included. A purge is
announced too, so every index forgets the purged vectors.

A record is the JSON of ``Indexed`` (key, context, hashes, expiry), a newline, and the
vector as 384 little-endian float32. A Redis that is down leaves the feed retrying
(``not_ready``); lookups keep using what the index already holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from gateway.cache.embedder import DIM, Vector
from gateway.cache.key import CacheKey
from gateway.cache.vectors import Indexed

log = logging.getLogger("wardgate.cache")

_RECONNECT_MAX_S = 5.0
_GLOB = str.maketrans({c: f"\\{c}" for c in "*?[]\\"})


def encode(entry: Indexed, vector: Vector) -> bytes:
    k = entry.key
    head = {
        "scope": k.scope,
        "model": k.model,
        "digest": k.digest,
        "context": entry.context,
        "text": entry.text,
        "bag": entry.bag,
        "expires": entry.expires,
    }
    return orjson.dumps(head) + b"\n" + np.asarray(vector, dtype="<f4").tobytes()


def decode(raw: bytes) -> tuple[Indexed, Vector] | None:
    head, sep, body = raw.partition(b"\n")
    if not sep or len(body) != DIM * 4:
        return None
    try:
        doc = orjson.loads(head)
        key = CacheKey(str(doc["scope"]), str(doc["model"]), str(doc["digest"]))
        entry = Indexed(key, str(doc["context"]), str(doc["text"]), str(doc["bag"]), float(doc["expires"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return entry, np.frombuffer(body, dtype="<f4").astype(np.float32)


class RedisFeed:
    def __init__(self, url: str, prefix: str, timeout_s: float) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=max(timeout_s, 1.0))
        self._sub = aioredis.Redis.from_url(url)
        self.prefix = prefix
        self.channel = f"{prefix}:semantic"
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.error: str | None = "not subscribed yet"

    def _key(self, key: CacheKey) -> str:
        return f"{self.prefix}:vec:{{{key.scope}}}:{key.model}:{key.digest}"

    async def publish(self, entry: Indexed, vector: Vector, ttl_s: float) -> None:
        """Store the record with the entry's lifetime and announce it (raises RedisError)."""
        record = encode(entry, vector)
        async with self._redis.pipeline(transaction=False) as pipe:
            await pipe.set(self._key(entry.key), record, px=max(1, int(ttl_s * 1000)))
            await pipe.publish(self.channel, record)
            await pipe.execute()

    async def purged(self, scope: str | None, model: str | None) -> None:
        """Delete the vector records of ``scope`` / ``model`` and announce the purge."""
        s = "{" + scope.translate(_GLOB) + "}" if scope is not None else "*"
        m = model.translate(_GLOB) if model is not None else "*"
        pattern = f"{self.prefix.translate(_GLOB)}:vec:{s}:{m}:*"
        batch: list[Any] = []
        async for name in self._redis.scan_iter(match=pattern, count=500):
            batch.append(name)
            if len(batch) >= 500:
                await self._redis.unlink(*batch)
                batch = []
        if batch:
            await self._redis.unlink(*batch)
        await self._redis.publish(self.channel, b"purge\n" + orjson.dumps({"scope": scope, "model": model}))

    def start(
        self, on_record: Callable[[Indexed, Vector], None], on_purge: Callable[[str | None, str | None], None]
    ) -> None:
        self._task = asyncio.create_task(self._listen(on_record, on_purge), name="cache-semantic-feed")

    def _dispatch(
        self,
        raw: Any,
        on_record: Callable[[Indexed, Vector], None],
        on_purge: Callable[[str | None, str | None], None],
    ) -> None:
        if not isinstance(raw, bytes):
            return
        if raw.startswith(b"purge\n"):
            try:
                doc = orjson.loads(raw[6:])
                on_purge(doc.get("scope"), doc.get("model"))
            except (orjson.JSONDecodeError, AttributeError):
                log.warning("ignoring a malformed cache purge announcement")
            return
        found = decode(raw)
        if found is not None:
            on_record(*found)

    async def _load(
        self, on_record: Callable[[Indexed, Vector], None], on_purge: Callable[[str | None, str | None], None]
    ) -> int:
        loaded = 0
        names: list[Any] = []
        async for name in self._redis.scan_iter(match=f"{self.prefix}:vec:*", count=1000):
            names.append(name)
            if len(names) >= 200:
                for raw in await self._redis.mget(names):
                    self._dispatch(raw, on_record, on_purge)
                loaded += len(names)
                names = []
        if names:
            for raw in await self._redis.mget(names):
                self._dispatch(raw, on_record, on_purge)
            loaded += len(names)
        return loaded

    async def _listen(
        self, on_record: Callable[[Indexed, Vector], None], on_purge: Callable[[str | None, str | None], None]
    ) -> None:
        delay = 0.1
        while not self._closing:
            pubsub = self._sub.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                await self._load(on_record, on_purge)  # after subscribing: nothing falls between
                self.error = None
                delay = 0.1
                async for message in pubsub.listen():
                    if message.get("type") == "message":
                        self._dispatch(message.get("data"), on_record, on_purge)
            except (RedisError, OSError) as exc:
                if self.error is None:
                    log.warning("semantic cache feed lost (%s); reconnecting", exc)
                self.error = f"semantic feed not subscribed: {str(exc) or type(exc).__name__}"
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self._redis.aclose()
        await self._sub.aclose()
