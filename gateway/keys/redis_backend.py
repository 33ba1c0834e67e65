"""Virtual keys shared by every replica through Redis (``keys.backend: redis``).

Layout (``<prefix>`` is ``keys.key_prefix``; one hash tag, so every script touches one slot
and the backend works on a Redis Cluster, ``keys.redis_mode: cluster``):

    {<prefix>:keys}:entries   hash  key id → the entry as JSON (keys.yaml's shape: hash, never the key)
    {<prefix>:keys}:version   int   bumped by every write
    {<prefix>:keys}:changed   pub/sub channel, a message per write
    {<prefix>:keys}:imported  set once keys.yaml has been imported (bootstrap)

Every worker keeps the whole key set in its ``KeyStore`` (authentication stays one local dict
lookup, no round trip per request) and reloads it when told: a message on the channel (within
milliseconds of a write), or, as the safety net for a lost message or a reconnect, a version
that differs from the one it loaded (checked every ``version_check_s``). A revocation therefore
reaches every replica within ``version_check_s`` plus one reload at worst.

Writes are optimistic: read the version and the entries (one script), change them here, then
one script writes only if the version is still the one read (else read again and retry), so
two replicas creating the same id cannot both win. (Scripts rather than ``WATCH``/``MULTI``:
the same on one Redis and on a cluster, where redis-py's cluster client has no ``WATCH``.)

Admin keys stay in keys.yaml, managed by hand (a leaked Redis cannot mint an admin key); each
reload re-reads them from the file. On the first start against an empty backend the file's
virtual keys are imported (one Lua script: exactly one replica imports).

Redis down: at start the worker serves no virtual keys (the file may list keys revoked since in
Redis: failing closed), reports not ready with the reason and keeps retrying; once loaded it
keeps serving the last loaded keys while Redis is away, reported in ``/readyz`` (not ready):
a revocation made meanwhile cannot reach it until Redis returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import orjson
from redis.exceptions import RedisError

from gateway import redisconn, redisurl
from gateway.keys.backend import KeysUnavailable
from gateway.keys.shared import KeyEdit, SharedKeys, created_order, read_doc
from gateway.keys.store import KeyFileError, KeyStore

log = logging.getLogger("wardgate.keys")
T = TypeVar("T")

_IMPORT = """
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
for i = 1, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('SET', KEYS[1], '1')
redis.call('INCR', KEYS[3])
redis.call('PUBLISH', KEYS[4], 'import')
return 1
"""

#: The version and every entry, read together (a version always describes the entries read).
_READ = """
return {redis.call('GET', KEYS[1]) or '', redis.call('HGETALL', KEYS[2])}
"""

#: ARGV: the version read, the number n of entries written, n (id, JSON) pairs, ids deleted.
_WRITE = """
if (redis.call('GET', KEYS[2]) or '') ~= ARGV[1] then return 0 end
local n = tonumber(ARGV[2])
for i = 0, n - 1 do redis.call('HSET', KEYS[1], ARGV[3 + 2 * i], ARGV[4 + 2 * i]) end
for i = 3 + 2 * n, #ARGV do redis.call('HDEL', KEYS[1], ARGV[i]) end
redis.call('INCR', KEYS[2])
redis.call('PUBLISH', KEYS[3], 'changed')
return 1
"""


class RedisKeys(SharedKeys[str]):
    """One worker's view of the shared keys, and its writer (``KeyBackend``)."""

    def __init__(
        self,
        store: KeyStore,
        url: str,
        file: Path,
        *,
        prefix: str = "wg",
        timeout_s: float = 2.0,
        version_check_s: float = 0.5,
        mode: str = "standalone",
    ) -> None:
        super().__init__(store, file, version_check_s)
        self.where = f"redis {'cluster ' if mode == 'cluster' else ''}{redisurl.where(url)}"
        self._redis = redisconn.client(url, mode, timeout_s=timeout_s, decode_responses=True)
        self._sub = redisconn.subscriber(url, mode, timeout_s=timeout_s, decode_responses=True)
        base = "{" + prefix + ":keys}"
        self._entries, self._version_key = f"{base}:entries", f"{base}:version"
        self._channel, self._imported = f"{base}:changed", f"{base}:imported"

    # -- reading ----------------------------------------------------------------------------

    async def _import_file(self, doc: dict[str, Any]) -> None:
        """Import keys.yaml's virtual keys into an empty backend (once, whoever starts first)."""
        args: list[str] = []
        for entry in doc.get("keys") or []:
            args += [str(entry["id"]), orjson.dumps(entry).decode()]
        keys = [self._imported, self._entries, self._version_key, self._channel]
        if await self._redis.eval(_IMPORT, len(keys), *keys, *args):
            log.info("keys: imported %d keys from %s into %s", len(args) // 2, self.file, self.where)

    async def reload(self) -> bool:
        """Load every key from Redis into the store; False (last keys kept) if it cannot."""
        async with self._lock:
            try:
                doc = await asyncio.to_thread(read_doc, self.file)
                if not self.loaded:
                    await self._import_file(doc)
                version, raw = await self._read()
                self._adopt(version, [orjson.loads(v) for v in raw.values()], doc)
            except (RedisError, OSError) as exc:
                return self._unreachable(exc)
            except (KeyFileError, ValueError) as exc:
                return self._failed(f"keys refused, last good keys kept: {exc}")
            return True

    async def _read(self) -> tuple[str, dict[str, str]]:
        """The version ('' before any write) and every entry, in one script."""
        version, flat = await self._redis.eval(_READ, 2, self._version_key, self._entries)
        return str(version), dict(zip(flat[::2], flat[1::2], strict=True))

    async def watch(self) -> None:
        """Follow the backend until cancelled: pub/sub messages, and the version as a safety net."""
        while True:
            pubsub = self._sub.pubsub()
            try:
                await pubsub.subscribe(self._channel)
                await self._sub.subscribed()
                await self.reload()  # after subscribing: no write between the two is missed
                while True:
                    message = await pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=self.version_check_s
                    )
                    if (
                        message is not None
                        or self.last_error is not None  # a reload that failed is retried
                        or await self._redis.get(self._version_key) != self.version
                    ):
                        await self.reload()
            except (RedisError, OSError) as exc:
                self._unreachable(exc)
                await self._sub.failed()  # a cluster: the next node
                await asyncio.sleep(self.version_check_s)
            except Exception:  # the follower must survive anything; the next round retries
                log.exception("keys: following %s failed", self.where)
                await asyncio.sleep(self.version_check_s)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    # -- writing ----------------------------------------------------------------------------

    async def edit(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply ``change`` to the shared keys (optimistic transaction), publish, load here."""
        try:
            admin = (await asyncio.to_thread(read_doc, self.file)).get("admin_keys") or []
            result = await self._edit(change, admin)
        except (RedisError, OSError) as exc:
            raise KeysUnavailable(
                f"Keys cannot be changed: the keys backend ({self.where}) is unreachable.",
                code="keys_store_unavailable",
            ) from exc
        await self.reload()
        return result

    async def _edit(self, change: Callable[[dict[str, Any]], T], admin: list[Any]) -> T:
        if not self.loaded:  # a first write (the CLI) imports keys.yaml first, like a start
            await self._import_file(await asyncio.to_thread(read_doc, self.file))
        keys = (self._entries, self._version_key, self._channel)
        while True:
            version, raw = await self._read()
            edit = KeyEdit({str(k): orjson.loads(v) for k, v in raw.items()}, change, admin)
            if not edit.writes and not edit.gone:
                return edit.result
            args: list[str] = [version, str(len(edit.writes))]
            for key_id, entry in edit.writes.items():
                args += [key_id, orjson.dumps(entry).decode()]
            args += list(edit.gone)
            if await self._redis.eval(_WRITE, len(keys), *keys, *args):
                return edit.result
            # Another replica wrote in between: read again and re-apply the change.

    async def list_entries(self) -> list[dict[str, Any]]:
        """Every virtual key entry in the backend (the CLI's ``list``; hashes included)."""
        raw = await self._redis.hgetall(self._entries)
        return sorted((orjson.loads(v) for v in raw.values()), key=created_order)

    # -- lifespan ---------------------------------------------------------------------------

    def start(self) -> None:
        self._start(self.watch(), "wardgate-keys-redis")

    async def close(self) -> None:
        await self._stop()
        await self._redis.aclose()
        await self._sub.aclose()

    async def delete_all(self) -> None:
        """Drop every key of this prefix (tests)."""
        await self._redis.delete(self._entries, self._version_key, self._imported)
