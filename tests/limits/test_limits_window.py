"""The sliding window: never more than the limit in ANY window of 60 s, and never stricter.

Fixed windows admit 2× the limit around a window edge; a GCRA with a full-limit burst admits a
burst and then a full refill within one window. These properties pin the sliding-window log
down for arbitrary arrival times, on both stores.
"""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from limits_helpers import TEAM, request

from gateway.limits.store import LimitStore, ScopeSpec
from tests.limits.limits_support import FakeClock

W = 60_000
_SETTINGS = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Arrival gaps in ms: many near 0 (bursts), some across a whole window.
_GAPS = st.lists(st.one_of(st.integers(0, 50), st.integers(0, 30_000), st.just(W)), min_size=1, max_size=40)


def _in_window(times: list[tuple[int, int]], t: int) -> int:
    return sum(w for a, w in times if t - W < a <= t)


@_SETTINGS
@given(gaps=_GAPS, limit=st.integers(1, 6))
async def test_requests_per_minute_hold_in_every_window(
    store: LimitStore, clock: FakeClock, gaps: list[int], limit: int
) -> None:
    spec = (ScopeSpec("key", uuid.uuid4().hex, rpm=limit), ScopeSpec("team", TEAM))
    admitted: list[tuple[int, int]] = []
    for gap in gaps:
        clock.advance(gap / 1000)
        result = await store.reserve(request(spec))
        now = result.now_ms
        if result.ok:
            admitted.append((now, 1))
        else:  # never stricter than the limit: the window really was full
            assert _in_window(admitted, now) == limit
            assert result.denial.retry_after_ms > 0
    for t, _ in admitted:
        assert _in_window(admitted, t) <= limit


@_SETTINGS
@given(
    arrivals=st.lists(st.tuples(st.integers(0, 20_000), st.integers(1, 400)), min_size=1, max_size=30),
    limit=st.integers(400, 1200),
)
async def test_tokens_per_minute_hold_in_every_window(
    store: LimitStore, clock: FakeClock, arrivals: list[tuple[int, int]], limit: int
) -> None:
    spec = (ScopeSpec("key", uuid.uuid4().hex, tpm=limit), ScopeSpec("team", TEAM))
    admitted: list[tuple[int, int]] = []
    for gap, tokens in arrivals:
        clock.advance(gap / 1000)
        result = await store.reserve(request(spec, tokens=tokens))
        if result.ok:
            admitted.append((result.now_ms, tokens))
        else:
            assert _in_window(admitted, result.now_ms) + tokens > limit
    for t, _ in admitted:
        assert _in_window(admitted, t) <= limit


async def test_no_double_burst_across_a_window_edge(store: LimitStore, clock: FakeClock) -> None:
    """The fixed-window failure: L calls just before an edge and L just after. Only L pass."""
    spec = (ScopeSpec("key", uuid.uuid4().hex, rpm=10), ScopeSpec("team", TEAM))
    clock.t = (int(clock.t) // 60 + 1) * 60 - 0.1  # 100 ms before a minute boundary
    before = [await store.reserve(request(spec)) for _ in range(10)]
    clock.advance(0.2)  # 100 ms after it
    after = [await store.reserve(request(spec)) for _ in range(10)]
    assert all(r.ok for r in before) and not any(r.ok for r in after)
    assert after[0].denial.retry_after_ms == 59_800
