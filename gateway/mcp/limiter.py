"""Rate limits on MCP tool calls: calls per minute per tool and scope (``mcp.yaml`` ``limits``).

    servers:
      payments:
        limits:
          - {tools: [transfer_funds], scope: agent, calls_per_minute: 5}
          - {calls_per_minute: 120}            # every tool, per key

A rule matches a call by the tool's ``name_key`` (globs, lower-case ASCII) and counts it in its
scope (the key, the team, the agent: ``X-Agent-Id``, the run: ``X-Run-Id``; a call without
that id counts under the key). A sliding window of 60 s: a call is admitted when every
matching rule has room, and then counted in all of them (a refused call counts nowhere), in
one atomic step.

Where the counts live follows the limits component: with ``limits.backend: redis`` they are in
the same Redis (one Lua script per call; keys carry the team as hash tag, as the limits' do),
so every worker and replica shares them, and a Redis that does not answer is handled as
``limits.on_store_error`` says (``deny``: the call is refused; ``allow``; ``local``: counted in
this process). Otherwise (memory backend, or limits off) they are counted in this process.
"""

from __future__ import annotations

import fnmatch
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from gateway.mcp.config import ToolLimit
from gateway.mcp.exchange import Exchange
from gateway.policy.textkey import name_key

log = logging.getLogger("wardgate.mcp")
_WINDOW_S = 60.0
#: Scopes kept at most in memory; the idle ones go first past it.
_MAX_SCOPES = 100_000

#: KEYS: one sorted set per matching rule; ARGV: now (ms), window (ms), a unique member, then
#: each rule's limit. Returns 0 (admitted and counted everywhere) or the 1-based rule refused.
_LUA = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - window)
  if redis.call('ZCARD', key) >= tonumber(ARGV[3 + i]) then
    return i
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, now, ARGV[3])
  redis.call('PEXPIRE', key, window)
end
return 0
"""


class MemoryWindows:
    """Sliding windows in this process."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[str, deque[float]] = {}

    async def admit(self, keys: list[str], limits: list[int], member: str) -> int:
        now = self._clock()
        windows = []
        for i, (key, limit) in enumerate(zip(keys, limits, strict=True)):
            window = self._windows.get(key)
            if window is None:
                if len(self._windows) >= _MAX_SCOPES:
                    self._forget_idle(now)
                window = self._windows[key] = deque()
            while window and window[0] <= now - _WINDOW_S:
                window.popleft()
            if len(window) >= limit:
                return i + 1
            windows.append(window)
        for window in windows:
            window.append(now)
        return 0

    def _forget_idle(self, now: float) -> None:
        for key in [k for k, w in self._windows.items() if not w or w[-1] <= now - _WINDOW_S]:
            del self._windows[key]


class RedisWindows:
    """Sliding windows in Redis, shared by every worker and replica (one script per call)."""

    def __init__(self, url: str, timeout_s: float, on_error: str, pool_size: int = 16) -> None:
        import redis.asyncio as redis

        self._redis = redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s, max_connections=pool_size
        )
        self._script = self._redis.register_script(_LUA)
        self._on_error = on_error
        self._local = MemoryWindows()

    async def admit(self, keys: list[str], limits: list[int], member: str) -> int:
        now_ms = int(time.time() * 1000)
        try:
            result = await self._script(keys=keys, args=[now_ms, int(_WINDOW_S * 1000), member, *limits])
            return int(result)
        except Exception as exc:  # Redis down or slow: limits.on_store_error decides
            log.warning(
                "mcp limits: redis failed (%s), on_store_error=%s", type(exc).__name__, self._on_error
            )
            if self._on_error == "allow":
                return 0
            if self._on_error == "local":
                return await self._local.admit(keys, limits, member)
            return -1

    async def close(self) -> None:
        await self._redis.aclose()


class McpLimiter:
    def __init__(self, windows: Any = None, prefix: str = "wg") -> None:
        self.windows = windows if windows is not None else MemoryWindows()
        self._prefix = prefix
        self._seq = 0

    def _scope_id(self, ex: Exchange, rule: ToolLimit) -> str:
        assert ex.principal is not None
        if rule.scope == "team":
            return "team"
        if rule.scope == "agent" and ex.agent_id:
            return "agent:" + ex.agent_id
        if rule.scope == "run" and ex.run_id:
            return "run:" + ex.run_id
        return "key:" + ex.principal.key_id

    async def admit(self, ex: Exchange, tool: str) -> str | None:
        """None when the call may go on; else why it is refused (no rule counted it)."""
        if ex.server is None or not ex.server.limits or ex.principal is None:
            return None
        key = name_key(tool)
        rules: list[ToolLimit] = []
        keys: list[str] = []
        for i, rule in enumerate(ex.server.limits):
            if any(fnmatch.fnmatchcase(key, p.lower()) for p in rule.tools):
                rules.append(rule)
                team = ex.principal.team
                keys.append(f"{self._prefix}:mcp:{{{team}}}:{ex.server.name}:{i}:{self._scope_id(ex, rule)}")
        if not rules:
            return None
        self._seq += 1
        refused = await self.windows.admit(
            keys, [r.calls_per_minute for r in rules], f"{ex.request_id}:{self._seq}"
        )
        if refused == 0:
            return None
        if refused < 0:
            return (
                "the rate limits store is unavailable, so the call was refused (limits.on_store_error: deny)"
            )
        rule = rules[refused - 1]
        return (
            f"rate limit: {rule.calls_per_minute} calls per minute of {tool!r} per {rule.scope} "
            f"on MCP server {ex.server.name!r}; retry later"
        )
