"""Console sessions in Redis: every worker and replica knows a session made on any of them.

One string per session (``{prefix:console}:session:<sha256 of the id>``), JSON, with a TTL of
what is left of it, so abandoned sessions go by themselves. Expiry itself is decided by
``SessionManager`` on the clock, not by the TTL.
"""

from __future__ import annotations

import orjson
import redis.asyncio as aioredis

from gateway.console.sessions import Session, SessionStore


class RedisSessionStore(SessionStore):
    def __init__(self, client: aioredis.Redis, prefix: str) -> None:
        self._redis = client
        self._prefix = "{" + prefix + ":console}:session:"

    @classmethod
    def from_url(cls, url: str, prefix: str) -> RedisSessionStore:
        return cls(aioredis.Redis.from_url(url, max_connections=16), prefix)

    async def put(self, session: Session, ttl_s: float) -> None:
        await self._redis.set(
            self._prefix + session.id_hash, orjson.dumps(session.to_dict()), px=max(1, int(ttl_s * 1000))
        )

    async def get(self, id_hash: str) -> Session | None:
        raw = await self._redis.get(self._prefix + id_hash)
        if raw is None:
            return None
        try:
            return Session.from_dict(orjson.loads(raw))
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None

    async def delete(self, id_hash: str) -> None:
        await self._redis.delete(self._prefix + id_hash)

    async def close(self) -> None:
        await self._redis.aclose()

    async def ping(self) -> str | None:
        await self._redis.ping()
        return None
