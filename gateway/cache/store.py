"""Where stored answers live: one interface, two stores (memory here, Redis in ``redis_store``).

A store maps a ``CacheKey`` to opaque bytes (the encoded entry, ``entry.py``) with a
lifetime. It never decides what may be stored or who may read it: the key already carries
the scope, and the stage decides. A store that fails raises ``CacheStoreError``; the stage
turns that into a miss (the call goes on to the provider), never into a failed call.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol

from gateway.cache.key import CacheKey


class CacheStoreError(Exception):
    """The store could not answer (Redis down, timed out): the caller treats it as a miss."""


class CacheStore(Protocol):
    name: str

    async def get(self, key: CacheKey) -> bytes | None:
        """The stored value, or None (absent or expired)."""
        ...

    async def put(self, key: CacheKey, value: bytes, ttl_s: float) -> None:
        """Store ``value`` for ``ttl_s`` seconds (replacing any value under ``key``)."""
        ...

    async def purge(self, scope: str | None, model: str | None) -> int:
        """Delete every entry of ``scope`` and/or ``model`` (both None: everything); the count."""
        ...

    async def stats(self) -> dict[str, Any]:
        """Entries and bytes held (as far as the store can tell cheaply)."""
        ...

    async def close(self) -> None: ...


class MemoryStore:
    """A per-process LRU bounded by bytes (keys and values), with a lifetime per entry.

    ``clock`` (seconds, ``time.time`` by default) is injectable so tests move time instead of
    sleeping. Expired entries are dropped when read and when room is needed."""

    name = "memory"

    def __init__(self, max_bytes: int, clock: Callable[[], float] = time.time) -> None:
        self.max_bytes = max_bytes
        self._clock = clock
        #: key id -> (value, expires at, key)
        self._entries: OrderedDict[str, tuple[bytes, float, CacheKey]] = OrderedDict()
        self.bytes = 0
        self.evictions = 0

    @staticmethod
    def _size(key_id: str, value: bytes) -> int:
        return len(key_id) + len(value) + 64  # the tuple and dict slot, roughly

    async def get(self, key: CacheKey) -> bytes | None:
        kid = key.id
        found = self._entries.get(kid)
        if found is None:
            return None
        value, expires, _ = found
        if expires <= self._clock():
            self._drop(kid)
            return None
        self._entries.move_to_end(kid)
        return value

    async def put(self, key: CacheKey, value: bytes, ttl_s: float) -> None:
        kid = key.id
        size = self._size(kid, value)
        if size > self.max_bytes:
            return
        if kid in self._entries:
            self._drop(kid)
        self._entries[kid] = (value, self._clock() + ttl_s, key)
        self.bytes += size
        while self.bytes > self.max_bytes and self._entries:
            oldest = next(iter(self._entries))
            self._drop(oldest)
            self.evictions += 1

    def _drop(self, kid: str) -> None:
        value, _, _ = self._entries.pop(kid)
        self.bytes -= self._size(kid, value)

    async def purge(self, scope: str | None, model: str | None) -> int:
        doomed = [
            kid
            for kid, (_, _, key) in self._entries.items()
            if (scope is None or key.scope == scope) and (model is None or key.model == model)
        ]
        for kid in doomed:
            self._drop(kid)
        return len(doomed)

    async def stats(self) -> dict[str, Any]:
        return {
            "store": self.name,
            "entries": len(self._entries),
            "bytes": self.bytes,
            "max_bytes": self.max_bytes,
            "evictions": self.evictions,
        }

    async def close(self) -> None:
        self._entries.clear()
        self.bytes = 0
