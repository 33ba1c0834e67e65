"""Rate limits on MCP tool calls: calls per minute per tool and scope (``mcp.yaml`` ``limits``).

    servers:
      payments:
        limits:
          - {tools: [transfer_funds], scope: agent, calls_per_minute: 5}
          - {calls_per_minute: 120}            # every tool, per key

A rule matches a call by the tool's ``name_key`` (globs, lower-case ASCII) and counts it in its
scope (the key, the team, the agent: ``X-Agent-Id``, the run: ``X-Run-Id``; a call without
that id counts under the key). A sliding window of 60 s: a call is admitted when every
matching rule has room, and then counted in all of them (a refused call counts nowhere). Kept
in this process: with several workers or replicas each counts its own (the MCP gateway's
limits are not yet in the shared limits store; docs/mcp.md).
"""

from __future__ import annotations

import fnmatch
import time
from collections import deque
from collections.abc import Callable

from gateway.mcp.config import ToolLimit
from gateway.mcp.exchange import Exchange
from gateway.policy.textkey import name_key

_WINDOW_S = 60.0
#: Scopes kept at most; the oldest idle ones go first past it.
_MAX_SCOPES = 100_000


class McpLimiter:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[tuple[str, ...], deque[float]] = {}

    def _scope_id(self, ex: Exchange, rule: ToolLimit) -> str:
        assert ex.principal is not None
        if rule.scope == "team":
            return "team:" + ex.principal.team
        if rule.scope == "agent" and ex.agent_id:
            return "agent:" + ex.principal.team + ":" + ex.agent_id
        if rule.scope == "run" and ex.run_id:
            return "run:" + ex.principal.team + ":" + ex.run_id
        return "key:" + ex.principal.key_id

    async def admit(self, ex: Exchange, tool: str) -> str | None:
        """None when the call may go on; else why it is refused (no rule counted it)."""
        if ex.server is None or not ex.server.limits or ex.principal is None:
            return None
        key = name_key(tool)
        now = self._clock()
        matched: list[deque[float]] = []
        for i, rule in enumerate(ex.server.limits):
            if not any(fnmatch.fnmatchcase(key, p.lower()) for p in rule.tools):
                continue
            slot = (ex.server.name, str(i), self._scope_id(ex, rule))
            window = self._windows.get(slot)
            if window is None:
                if len(self._windows) >= _MAX_SCOPES:
                    self._forget_idle(now)
                window = self._windows[slot] = deque()
            while window and window[0] <= now - _WINDOW_S:
                window.popleft()
            if len(window) >= rule.calls_per_minute:
                retry = max(0.0, window[0] + _WINDOW_S - now) if window else _WINDOW_S
                return (
                    f"rate limit: {rule.calls_per_minute} calls per minute of {tool!r} per {rule.scope} "
                    f"on MCP server {ex.server.name!r}; retry in {retry:.0f}s"
                )
            matched.append(window)
        for window in matched:
            window.append(now)
        return None

    def _forget_idle(self, now: float) -> None:
        for slot in [s for s, w in self._windows.items() if not w or w[-1] <= now - _WINDOW_S]:
            del self._windows[slot]
