"""Failed console sign-ins, counted per client address and per key prefix: brute force is refused.

An admin key is a bearer secret; the sign-in form is the one console route that accepts one
from anybody. Every failed sign-in is counted in two sliding windows of
``console.signin_window_s``: one for the client's address (``request.client``: behind a proxy
trusted by ``server.forwarded_allow_ips``, the forwarded one) and one for the submitted key's
first ``PREFIX_CHARS`` characters (hashed: a typo of a real key is still mostly that key), so
neither many guesses from one address nor guesses at one key from many addresses go on. When
either count has reached its limit, every sign-in from that address or with that prefix is
refused *before the key is checked* (a right key does not unlock it: that would tell the guesser
it was right) with 429 and ``Retry-After``: the seconds until the oldest counted failure leaves
the window. Successful sign-ins do not reset the counts (a shared address's user would reset an
attacker's). A failure is counted only while allowed, so a locked-out guesser adds nothing and the
window ends on its own.

Where the counts live: ``memory`` (one process), or ``redis`` (every worker and replica sees the
same counts: one Lua script per check, on Redis's clock, keys under the sessions' hash tag
``{<prefix>:console}``). ``auto`` takes the limits' Redis when ``limits.backend`` is ``redis``,
else the sessions' when they are on Redis, else memory. A store that cannot answer refuses the
sign-in (503): fail closed.
"""

from __future__ import annotations

import hashlib
import math
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

#: Characters of the submitted key counted as its prefix (``wg-`` and nine random ones).
PREFIX_CHARS = 12
#: Scopes in the order the stores take and answer them.
SCOPES = ("ip", "key_prefix")


@dataclass(frozen=True, slots=True)
class Verdict:
    """Failures counted in each scope, and when the refused scopes open again."""

    counts: tuple[int, ...]
    #: Seconds until every scope at its limit is below it again; 0: allowed.
    retry_after_s: float
    #: The scopes at their limit (``ip``, ``key_prefix``).
    refused: tuple[str, ...]

    @property
    def allowed(self) -> bool:
        return not self.refused

    @property
    def retry_after(self) -> str:
        """The ``Retry-After`` header: whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after_s)))


class ThrottleStore(ABC):
    """Sliding windows of failure times under opaque keys."""

    @abstractmethod
    async def hit(
        self, keys: tuple[str, ...], limits: tuple[int, ...], window_s: float, add: bool
    ) -> list[tuple[int, float]]:
        """Per key ``(failures in the window, seconds until it is below its limit)`` (0 when
        below), after adding one failure to each key when ``add``."""

    async def close(self) -> None:  # noqa: B027 (optional hook: memory has nothing to close)
        """Close connections (nothing for memory)."""


class MemoryThrottleStore(ThrottleStore):
    """One process's counts (several workers each count their own: share them on Redis)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._log: dict[str, deque[float]] = {}

    async def hit(
        self, keys: tuple[str, ...], limits: tuple[int, ...], window_s: float, add: bool
    ) -> list[tuple[int, float]]:
        now = self._clock()
        if add and len(self._log) >= self._max_keys:  # drop idle windows (a spray of addresses)
            self._log = {k: v for k, v in self._log.items() if v and v[-1] > now - window_s}
        out: list[tuple[int, float]] = []
        for key, limit in zip(keys, limits, strict=True):
            log = self._log.get(key)
            if log is None:
                if not add:
                    out.append((0, 0.0))
                    continue
                log = self._log[key] = deque()
            while log and log[0] <= now - window_s:
                log.popleft()
            if add:
                log.append(now)
            n = len(log)
            out.append((n, log[n - limit] + window_s - now if n >= limit else 0.0))
            if not log:
                del self._log[key]
        return out


# KEYS: one sorted set per scope (member: a unique failure id, score: ms on Redis's clock).
# ARGV: window ms, add (0|1), failure id, then each key's limit. Returns count, retry ms per key.
_HIT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if ARGV[2] == '1' then
    redis.call('ZADD', key, now, ARGV[3] .. ':' .. i)
    redis.call('PEXPIRE', key, window)
  end
  local n = redis.call('ZCARD', key)
  local limit = tonumber(ARGV[3 + i])
  local retry = 0
  if n >= limit then
    local oldest = redis.call('ZRANGE', key, n - limit, n - limit, 'WITHSCORES')
    retry = tonumber(oldest[2]) + window - now
  end
  out[#out + 1] = n
  out[#out + 1] = retry
end
return out
"""


class RedisThrottleStore(ThrottleStore):
    """Counts shared by every worker and replica on one Redis (or Redis Cluster: one hash tag)."""

    def __init__(self, client: Any, prefix: str) -> None:
        self._redis = client
        self._prefix = "{" + prefix + ":console}:signin:"
        self._script = client.register_script(_HIT)

    @classmethod
    def from_url(cls, url: str, mode: str, prefix: str, timeout_s: float = 2.0) -> RedisThrottleStore:
        from gateway import redisconn

        return cls(redisconn.client(url, mode, timeout_s=timeout_s, max_connections=8), prefix)

    async def hit(
        self, keys: tuple[str, ...], limits: tuple[int, ...], window_s: float, add: bool
    ) -> list[tuple[int, float]]:
        import secrets

        window_ms = max(1, int(window_s * 1000))
        reply = await self._script(
            keys=[self._prefix + k for k in keys],
            args=[window_ms, "1" if add else "0", secrets.token_hex(8), *limits],
        )
        values = [int(v) for v in reply]
        return [(values[i], values[i + 1] / 1000) for i in range(0, len(values), 2)]

    async def close(self) -> None:
        await self._redis.aclose()


def _keys(client: str, key: str) -> tuple[str, ...]:
    prefix = hashlib.sha256(key[:PREFIX_CHARS].encode("utf-8", "replace")).hexdigest()[:32]
    return (f"ip:{client}", f"kp:{prefix}")


class SignInThrottle:
    """The two windows over a store: ``check`` before a sign-in, ``failed`` after a wrong key."""

    def __init__(self, store: ThrottleStore, per_ip: int, per_key_prefix: int, window_s: float) -> None:
        self.store = store
        self.limits = (per_ip, per_key_prefix)
        self.window_s = window_s

    async def check(self, client: str, key: str) -> Verdict:
        """May this address sign in with this key now? (nothing counted)"""
        return self._verdict(await self.store.hit(_keys(client, key), self.limits, self.window_s, False))

    async def failed(self, client: str, key: str) -> Verdict:
        """Count a failed sign-in; the verdict says whether the next one will be refused."""
        return self._verdict(await self.store.hit(_keys(client, key), self.limits, self.window_s, True))

    def _verdict(self, per_scope: list[tuple[int, float]]) -> Verdict:
        refused = tuple(
            scope for scope, (n, _), limit in zip(SCOPES, per_scope, self.limits, strict=True) if n >= limit
        )
        retry = max(
            (r for (n, r), limit in zip(per_scope, self.limits, strict=True) if n >= limit), default=0.0
        )
        return Verdict(tuple(n for n, _ in per_scope), max(retry, 0.0), refused)

    async def close(self) -> None:
        await self.store.close()
