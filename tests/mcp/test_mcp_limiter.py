"""MCP rate limits: the sliding window, rules per tool and scope, and Redis shared by workers."""

from __future__ import annotations

import time

import pytest

from gateway.call import Principal
from gateway.mcp.config import McpServer, ToolLimit
from gateway.mcp.exchange import Exchange
from gateway.mcp.limiter import McpLimiter, MemoryWindows, RedisWindows
from tests.waiting import FakeClock

pytestmark = pytest.mark.asyncio

RULES = (
    ToolLimit(tools=["transfer_*"], scope="agent", calls_per_minute=2),
    ToolLimit(scope="team", calls_per_minute=4),
)
SERVER = McpServer("payments", "http://x/mcp", 5.0, None, None, RULES)


def _ex(agent: str, key: str = "k1", team: str = "finance") -> Exchange:
    ex = Exchange("payments", "POST", time.perf_counter())
    ex.server = SERVER
    ex.principal = Principal(key_id=key, team=team)
    ex.agent_id = agent
    return ex


async def test_rules_count_per_tool_and_scope_in_a_sliding_window() -> None:
    clock = FakeClock()
    limiter = McpLimiter(MemoryWindows(clock))
    assert await limiter.admit(_ex("a"), "Transfer_Funds") is None
    assert await limiter.admit(_ex("a"), "transfer_funds") is None
    refused = await limiter.admit(_ex("a"), "transfer_funds")
    assert refused is not None and "2 calls per minute of 'transfer_funds' per agent" in refused
    assert await limiter.admit(_ex("b"), "transfer_funds") is None  # another agent
    assert await limiter.admit(_ex("b"), "get_balance") is None  # team: 4th call
    team = await limiter.admit(_ex("c"), "get_balance")
    assert team is not None and "per team" in team  # a refused call counted nowhere
    assert await limiter.admit(_ex("c", team="other"), "get_balance") is None
    clock.advance(61)
    assert await limiter.admit(_ex("a"), "transfer_funds") is None


async def test_redis_windows_are_shared_by_workers(redis_url: str, key_prefix: str) -> None:
    one = RedisWindows(redis_url, 2.0, "deny")
    two = RedisWindows(redis_url, 2.0, "deny")
    try:
        workers = [McpLimiter(one, key_prefix), McpLimiter(two, key_prefix)]
        results = [await workers[i % 2].admit(_ex("a"), "transfer_funds") for i in range(3)]
        assert results[:2] == [None, None] and results[2] is not None
    finally:
        await one.close()
        await two.close()


async def test_a_redis_that_does_not_answer_follows_on_store_error() -> None:
    dead = "redis://127.0.0.1:1/0"
    for on_error, admitted in (("deny", False), ("allow", True), ("local", True)):
        windows = RedisWindows(dead, 0.5, on_error)
        try:
            refused = await McpLimiter(windows).admit(_ex("a"), "transfer_funds")
        finally:
            await windows.close()
        assert (refused is None) is admitted, on_error
        if not admitted:
            assert refused is not None and "unavailable" in refused
