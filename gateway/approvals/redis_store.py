"""Redis approval store: shared by every replica, survives gateway restarts.

Layout (all keys share the hash tag ``{<prefix>:apr}`` so the Lua scripts, which touch a
record and the indexes together, work on Redis Cluster; approvals are low-volume, so one
slot is plenty):

    {p:apr}:r:<id>     hash  doc (JSON record), ver (int), ans (sealed answer), vals (sealed
                             real tool-call arguments)
    {p:apr}:all        zset  id → creation time (µs), for paged listing
    {p:apr}:pending    zset  id → expiry time, for the sweep
    {p:apr}:j:<join>   string id of the pending approval an identical request joins (SET NX
                             in the create script; deleted by the change that ends pending;
                             expires with the approval)
    {p:apr}:lock:<n>   string, SET NX PX: one replica sweeps per interval
    <p>:apr:events     pub/sub channel: {"kind", "doc"} for every change

Every write is one Lua script that writes and publishes together, so a change is never
visible without its message (or the reverse). A dedicated pub/sub connection turns messages
into listener calls on every replica; after a reconnect listeners get ``resync``. Redis down
at start is not fatal: the subscriber keeps trying (0.1 s doubling to 5 s) and ``not_ready``
says why meanwhile; the service reports it in ``/readyz`` and every call needing the store
fails closed until it answers. On a Redis Cluster (``redis_mode: cluster``) commands go
through redis-py's cluster client and the subscription to the seed node (``redisconn``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, ParamSpec, TypeVar, cast

import orjson
from redis.exceptions import RedisError

from gateway import redisconn, redisurl
from gateway.approvals.model import Approval, Clock, Status
from gateway.approvals.store import ApprovalStore, approval_join_key, order_score
from gateway.approvals.tasks import stop
from gateway.errors import ApprovalsUnavailable

log = logging.getLogger("wardgate.approvals")

_CREATE = """
if ARGV[8] == '1' then
  local current = redis.call('GET', KEYS[4])
  if current then return current end
end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'doc', ARGV[1], 'ver', '1')
if ARGV[2] ~= '' then redis.call('HSET', KEYS[1], 'ans', ARGV[2]) end
if ARGV[10] ~= '' then redis.call('HSET', KEYS[1], 'vals', ARGV[10]) end
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[5])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[3], ARGV[4], ARGV[5])
  redis.call('SET', KEYS[4], ARGV[5], 'NX', 'PX', ARGV[9])
end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
"""

_CAS = """
local ver = redis.call('HGET', KEYS[1], 'ver')
if not ver then return -1 end
if ver ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'doc', ARGV[2], 'ver', tostring(tonumber(ver) + 1))
if ARGV[3] ~= '' then
  redis.call('ZADD', KEYS[2], ARGV[3], ARGV[5])
else
  redis.call('ZREM', KEYS[2], ARGV[5])
  if redis.call('GET', KEYS[3]) == ARGV[5] then redis.call('DEL', KEYS[3]) end
end
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) end
redis.call('PUBLISH', ARGV[6], ARGV[7])
return 1
"""

_RECONNECT_MAX_S = 5.0


def _as_bytes(value: object) -> bytes | None:
    """A stored blob, or None when absent or empty (the client answers bytes: no decoding)."""
    return value if isinstance(value, bytes) and value else None


def _text(member: object) -> str:
    """A sorted-set member (an approval id) as text."""
    return member.decode() if isinstance(member, bytes) else str(member)


def _scored(raw: Iterable[object]) -> list[tuple[int, str]]:
    """``(score, id)`` from a ``withscores=True`` range reply of ``(member, score)`` pairs."""
    pairs = cast("Iterable[tuple[object, float]]", raw)
    return [(int(score), _text(member)) for member, score in pairs]


P = ParamSpec("P")
R = TypeVar("R")


def _reachable(fn: Callable[P, Coroutine[Any, Any, R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Redis unreachable or failing mid-call becomes a 503 ``approvals_unavailable`` (fail
    closed, OpenAI-shaped), not an unhandled error answered as a 500 "Internal error"."""

    @functools.wraps(fn)
    async def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except (RedisError, OSError) as exc:
            store: Any = args[0]
            raise ApprovalsUnavailable(
                f"The approval store ({getattr(store, 'where', 'Redis')}) cannot be reached; the call needs it and is "
                "refused. Retry once it is back.",
            ) from exc

    return call


class RedisApprovalStore(ApprovalStore):
    def __init__(
        self,
        client: redisconn.AnyRedis,
        prefix: str,
        retention_s: float,
        *,
        clock: Clock = time.time,
        subscriber: redisconn.Subscriber | None = None,
    ) -> None:
        """``clock``: the service's clock, so a join key lapses when its approval expires.
        ``subscriber``: the client for pub/sub (default ``client``, which must then be one
        server's client)."""
        super().__init__()
        #: Where the store lives, for errors (``host:port``; never the URL's password).
        self.where = "Redis"
        self._clock = clock
        self._redis = client
        self._sub: redisconn.Subscriber | redisconn.AnyRedis = (
            subscriber if subscriber is not None else client
        )
        #: Why the change feed is down (None: subscribed).
        self._feed_error: str | None = "pub/sub not subscribed yet"
        self._tag = "{" + prefix + ":apr}"
        self._all = f"{self._tag}:all"
        self._pending = f"{self._tag}:pending"
        self.channel = f"{prefix}:apr:events"
        self._retention = max(1, int(retention_s))
        self._create = client.register_script(_CREATE)
        self._cas_script = client.register_script(_CAS)
        self._listener_task: asyncio.Task[None] | None = None
        self._attempted = asyncio.Event()
        self._closing = False

    @classmethod
    def from_url(
        cls,
        url: str,
        prefix: str,
        retention_s: float,
        max_connections: int = 64,
        *,
        clock: Clock = time.time,
        mode: str = "standalone",
    ) -> RedisApprovalStore:
        """A client whose pool makes callers wait for a free connection instead of failing.

        A thousand held requests re-reading their approval at once would otherwise exceed the
        pool and fail with ``MaxConnectionsError``; waiting a few milliseconds is the right trade.
        """
        client = redisconn.client(url, mode, max_connections=max_connections, blocking_timeout_s=30)
        store = cls(client, prefix, retention_s, clock=clock, subscriber=redisconn.subscriber(url, mode))
        store.where = f"Redis at {redisurl.where(url)}"
        return store

    def _key(self, approval_id: str) -> str:
        return f"{self._tag}:r:{approval_id}"

    def _join_key(self, approval: Approval) -> str:
        return f"{self._tag}:j:{approval_join_key(approval)}"

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Subscribe; a Redis that is down does not fail the start (see the module docstring).

        Waits briefly for the first attempt, so a healthy start is ready at once."""
        self._listener_task = asyncio.create_task(self._listen(), name="approvals-pubsub")
        waiter = asyncio.create_task(self._attempted.wait())
        await asyncio.wait({waiter, self._listener_task}, timeout=10.0)
        waiter.cancel()
        if self._listener_task.done():  # a bug, not an outage: the listener never ends on its own
            self._listener_task.result()

    async def close(self) -> None:
        self._closing = True
        await stop(self._listener_task)
        await self._redis.aclose()
        if self._sub is not self._redis:
            await self._sub.aclose()

    async def ping(self) -> None:
        await self._redis.ping()

    def not_ready(self) -> str | None:
        return self._feed_error

    async def _listen(self) -> None:
        delay = 0.1
        resync = False  # the first subscription needs none: the service loads after start
        while not self._closing:
            pubsub = self._sub.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self.channel)
                if isinstance(self._sub, redisconn.Subscriber):
                    await self._sub.subscribed()
                self._feed_error = None
                self._attempted.set()
                if resync:
                    self._emit("resync", None)
                resync = True
                delay = 0.1
                async for message in pubsub.listen():
                    if self._closing:
                        return
                    self._on_message(message)
            except (RedisError, OSError) as exc:
                if self._feed_error is None:
                    log.warning("approvals pub/sub lost (%s); reconnecting", exc)
                elif not self._attempted.is_set():
                    log.error("approvals: Redis not reachable at start (%s); not ready, retrying", exc)
                self._feed_error = f"pub/sub not subscribed: {str(exc) or type(exc).__name__}"
                self._attempted.set()
                resync = True
                if isinstance(self._sub, redisconn.Subscriber):  # a cluster: the next node
                    await self._sub.failed()
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RECONNECT_MAX_S)
            finally:
                with contextlib.suppress(RedisError, OSError):
                    await pubsub.aclose()

    def _on_message(self, message: dict) -> None:
        if message.get("type") != "message":
            return
        try:
            payload = orjson.loads(message["data"])
            approval = Approval.from_dict(payload["doc"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("ignoring a malformed approvals message")
            return
        self._emit(str(payload.get("kind") or "updated"), approval)

    # -- primitives ------------------------------------------------------------------
    @_reachable
    async def create(
        self,
        approval: Approval,
        sealed_answer: bytes | None,
        sealed_values: bytes | None = None,
        *,
        join: bool = False,
    ) -> str | None:
        doc = orjson.dumps(approval.to_dict())
        pending = str(approval.expires_at) if approval.status is Status.PENDING else ""
        ttl_ms = max(1, int((approval.expires_at - self._clock()) * 1000))
        result = await self._create(
            keys=[self._key(approval.id), self._all, self._pending, self._join_key(approval)],
            args=[
                doc,
                sealed_answer or b"",
                order_score(approval),
                pending,
                approval.id,
                self.channel,
                _message("created", doc),
                "1" if join else "0",
                ttl_ms,
                sealed_values or b"",
            ],
        )
        if isinstance(result, bytes):
            return result.decode()
        if not result:
            raise ValueError(f"duplicate approval id {approval.id}")
        return None

    @_reachable
    async def get(self, approval_id: str) -> Approval | None:
        doc = await self._redis.hget(self._key(approval_id), "doc")
        return Approval.from_dict(orjson.loads(doc)) if doc else None

    @_reachable
    async def get_answer(self, approval_id: str) -> bytes | None:
        return _as_bytes(await self._redis.hget(self._key(approval_id), "ans"))

    @_reachable
    async def get_values(self, approval_id: str) -> bytes | None:
        return _as_bytes(await self._redis.hget(self._key(approval_id), "vals"))

    @_reachable
    async def _load_versioned(self, approval_id: str) -> tuple[Approval, int] | None:
        doc, ver = await self._redis.hmget(self._key(approval_id), ["doc", "ver"])
        if not doc or ver is None:
            return None
        return Approval.from_dict(orjson.loads(doc)), int(ver)

    @_reachable
    async def _cas(self, approval: Approval, version: int) -> bool:
        doc = orjson.dumps(approval.to_dict())
        pending = str(approval.expires_at) if approval.status is Status.PENDING else ""
        ttl = 0 if approval.status is Status.PENDING else self._retention
        result = await self._cas_script(
            keys=[self._key(approval.id), self._pending, self._join_key(approval)],
            args=[version, doc, pending, ttl, approval.id, self.channel, _message("updated", doc)],
        )
        return result == 1

    @_reachable
    async def _scan(self, before: tuple[int, str] | None, count: int) -> list[tuple[int, str]]:
        if before is None:
            raw = await self._redis.zrevrangebyscore(
                self._all, "+inf", "-inf", start=0, num=count, withscores=True
            )
            return _scored(raw)
        score, last_id = before
        # Same-score members come in reverse lexical order: skip those at or after the cursor.
        raw = await self._redis.zrevrangebyscore(
            self._all, score, "-inf", start=0, num=count + 64, withscores=True
        )
        out = _scored(raw)
        out = [(s, m) for s, m in out if s < score or m < last_id]
        return out[:count]

    @_reachable
    async def _load_many(self, ids: list[str]) -> list[Approval | None]:
        if not ids:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for approval_id in ids:
                pipe.hget(self._key(approval_id), "doc")  # type: ignore[unused-awaitable]  # queued: execute() sends it
            docs = await pipe.execute()
        gone = [i for i, d in zip(ids, docs, strict=True) if not d]
        if gone:  # records past retention: drop them from the index as we meet them
            await self._redis.zrem(self._all, *gone)
        return [Approval.from_dict(orjson.loads(d)) if d else None for d in docs]

    @_reachable
    async def due(self, now: float, limit: int = 500) -> list[str]:
        raw = await self._redis.zrangebyscore(self._pending, "-inf", now, start=0, num=limit)
        return [_text(m) for m in raw]

    @_reachable
    async def count_pending(self) -> int:
        return int(await self._redis.zcard(self._pending))

    @_reachable
    async def try_lock(self, name: str, ttl_s: float) -> bool:
        return bool(
            await self._redis.set(f"{self._tag}:lock:{name}", b"1", nx=True, px=max(1, int(ttl_s * 1000)))
        )

    @_reachable
    async def purge(self, before: float) -> int:
        """Trim the listing index; the records themselves lapse by their TTL."""
        return int(await self._redis.zremrangebyscore(self._all, "-inf", f"({int(before * 1_000_000)}"))

    async def delete_all(self) -> None:
        """Drop every key of this prefix (tests and tooling only; never used by the gateway)."""
        keys = [k async for k in self._redis.scan_iter(match=f"{self._tag}:*", count=500)]
        if keys:
            await self._redis.delete(*keys)


def _message(kind: str, doc: bytes) -> bytes:
    return b'{"kind":"' + kind.encode() + b'","doc":' + doc + b"}"
