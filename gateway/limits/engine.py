"""Pure helpers shared by both stores (the Lua script implements the same rules).

Rate limiting uses a **sliding window log**: every admitted call leaves an entry (arrival
time, token weight) in its scope's log for exactly one window; a call is admitted only if
the entries of the last window plus this call stay within the limit. Unlike fixed windows
(2× burst across a window edge) and GCRA with a full-limit burst tolerance (a burst of L then
a refill of L within one window), this bounds the count in *every* window of length
``window_s`` by the limit, exactly. It costs one log entry per admitted call, which the limit
itself bounds (at most ``requests_per_minute`` entries per scope).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from gateway.limits.store import Denial, RateInfo, ReserveRequest, ScopeSpec

BURN_SLOTS = 60  # one-minute buckets: the burn rate covers the last hour
#: ``reserved`` (a budget held only by calls in flight) and ``concurrent`` denials say "retry
#: in a second": calls in flight usually finish within seconds, and no store event says when.
RESERVED_RETRY_MS = 1000
_PRIORITY = {
    "loop": 0,
    "calls": 1,
    "budget": 2,
    "too_large": 3,
    "requests": 4,
    "tokens": 4,
    "reserved": 4,
    "concurrent": 4,
}

#: Per scope: requests/min, tokens/min, (day, month, total) budgets, calls in flight.
Limits = tuple[int | None, int | None, tuple[int | None, int | None, int | None], int | None]


def minute_of(now_ms: int) -> int:
    return now_ms // 60_000


def _pick(override: dict[str, Any] | None, key: str, default: int | None) -> int | None:
    """A runtime override wins; an explicit ``null`` in it means "no limit"."""
    if override is not None and key in override:
        value = override[key]
        return None if value is None else int(value)
    return default


def _min(a: int | None, b: int | None) -> int | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


def run_cost_limit(
    overrides: Sequence[dict[str, Any] | None], team_index: int, configured: int | None
) -> int | None:
    """The run's cost cap: the team's runtime override wins over the configured run guard."""
    return _pick(overrides[team_index] if team_index >= 0 else None, "run_max_cost", configured)


def budget_limits(
    spec: ScopeSpec, override: dict[str, Any] | None, run_cost: int | None = None
) -> tuple[int | None, int | None, int | None]:
    """(day, month, total) budget of one scope; ``run_cost`` caps the run scope's total."""
    day, month, total = spec.budget_nano
    return (
        _pick(override, "day", day),
        _pick(override, "month", month),
        _min(_pick(override, "total", total), run_cost),
    )


def effective_limits(
    req: ReserveRequest, overrides: Sequence[dict[str, Any] | None]
) -> tuple[list[Limits], int | None, int | None]:
    """Merge configured limits with runtime overrides: per scope, and the team's run guards."""
    team_ov = overrides[req.team_index] if req.team_index >= 0 else None
    max_calls = _pick(team_ov, "run_max_calls", req.max_calls)
    max_identical = _pick(team_ov, "run_max_identical", req.max_identical)
    run_cost = run_cost_limit(overrides, req.team_index, req.max_run_cost_nano)
    out: list[Limits] = []
    for i, (spec, ov) in enumerate(zip(req.scopes, overrides, strict=True)):
        out.append(
            (
                _pick(ov, "rpm", spec.rpm),
                _pick(ov, "tpm", spec.tpm),
                budget_limits(spec, ov, run_cost if i == req.run_index else None),
                _pick(ov, "concurrent", spec.concurrent),
            )
        )
    return out, max_calls, max_identical


def denial_priority(denials: Sequence[Denial]) -> Denial:
    """The denial to report: one that waiting cannot fix first, else the longest wait."""
    return min(denials, key=lambda d: (_PRIORITY[d.reason], d.retry_after_ms >= 0, -d.retry_after_ms))


def pick_rate_info(infos: Sequence[RateInfo]) -> RateInfo | None:
    """The most constraining scope's numbers, for the ``x-ratelimit-*`` headers."""
    if not infos:
        return None
    return min(infos, key=lambda r: r.remaining)  # the first of equals, as the Lua does
