"""What the client sees of a limit decision: ``x-ratelimit-*`` headers and the 429 errors.

Headers follow OpenAI's (``x-ratelimit-limit-requests``, ``-remaining-``, ``-reset-``, and the
same for tokens) so SDKs and dashboards that read them keep working; the numbers are those of
the most constraining scope. ``x-ratelimit-reset-*`` is the time until the next log entry
leaves the window, i.e. when ``remaining`` next grows. 429s carry ``retry-after`` (seconds)
and ``retry-after-ms``, which the openai SDK honours; denials that waiting cannot fix (budget,
loop, run cap, a request larger than the tokens/min limit) say ``x-should-retry: false``, and
the two that clear as calls in flight finish (``budget_reserved``: the budget is held only by
reservations; ``concurrency_limit_exceeded``) say ``x-should-retry: true`` with a retry-after.
"""

from __future__ import annotations

import math

from gateway.errors import BudgetExceeded, GatewayError, LoopDetected, RateLimited
from gateway.limits.store import Denial, RateInfo, ReserveResult, ScopeSpec, nano_to_usd
from gateway.limits.windows import format_reset


def rate_headers(result: ReserveResult) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, info in (("requests", result.requests), ("tokens", result.tokens)):
        if info is not None:
            _put(headers, name, info)
    return headers


def _put(headers: dict[str, str], name: str, info: RateInfo) -> None:
    headers[f"x-ratelimit-limit-{name}"] = str(info.limit)
    headers[f"x-ratelimit-remaining-{name}"] = str(max(info.remaining, 0))
    headers[f"x-ratelimit-reset-{name}"] = format_reset(info.reset_ms)


def budget_remaining_nano(result: ReserveResult, est_nano: int, reserved: bool) -> int | None:
    """The tightest budget's remaining amount, after this call's reservation if it was made."""
    if not result.budgets:
        return None
    least = min(b.remaining_nano for b in result.budgets)
    return max(least - est_nano, 0) if reserved else max(least, 0)


def format_usd(nano: int) -> str:
    return f"{nano_to_usd(nano):.6f}"


def _describe(spec: ScopeSpec) -> str:
    return f"{spec.kind} '{spec.ident}'"


def denial_error(denial: Denial, spec: ScopeSpec, result: ReserveResult, est_nano: int) -> GatewayError:
    """The typed error for a store denial, with the headers the client needs to react."""
    headers = rate_headers(result)
    remaining = budget_remaining_nano(result, est_nano, reserved=False)
    if remaining is not None:
        headers["x-wardgate-budget-remaining"] = format_usd(remaining)
    extra = {"scope": spec.kind, "scope_id": spec.ident}
    if denial.reason == "loop":
        return LoopDetected(
            f"Loop detected: this request was already sent {denial.limit} times in run '{spec.ident}' "
            "(limit of identical requests per run). Change the request or start a new run.",
            headers=headers,
            extra=extra,
        )
    if denial.reason == "calls":
        headers["x-should-retry"] = "false"
        return RateLimited(
            f"Run '{spec.ident}' reached its limit of {denial.limit} calls.",
            code="run_call_limit",
            headers=headers,
            extra=extra,
        )
    if denial.reason == "budget":
        window = denial.window or "total"
        return BudgetExceeded(
            f"Budget exceeded for {_describe(spec)}: the {window} budget of ${nano_to_usd(denial.limit):.4f} "
            f"cannot cover this call's reservation of ${nano_to_usd(est_nano):.6f} "
            "(spend plus calls in flight). Lower max_tokens, or wait for the budget window to reset.",
            headers=headers,
            extra={**extra, "window": window},
        )
    if denial.reason == "reserved":
        # Only calls in flight hold the budget: it frees (or is spent) as they finish.
        window = denial.window or "total"
        retry_ms = max(denial.retry_after_ms, 1)
        headers.update(
            {
                "retry-after": str(math.ceil(retry_ms / 1000)),
                "retry-after-ms": str(retry_ms),
                "x-should-retry": "true",
            }
        )
        return RateLimited(
            f"Budget held by calls in flight for {_describe(spec)}: the {window} budget of "
            f"${nano_to_usd(denial.limit):.4f} can cover this call's reservation of ${nano_to_usd(est_nano):.6f}, "
            f"but not while the calls in flight hold their reservations. Retry after {retry_ms / 1000:.0f}s.",
            code="budget_reserved",
            headers=headers,
            extra={**extra, "window": window},
        )
    if denial.reason == "concurrent":
        retry_ms = max(denial.retry_after_ms, 1)
        headers.update(
            {
                "retry-after": str(math.ceil(retry_ms / 1000)),
                "retry-after-ms": str(retry_ms),
                "x-should-retry": "true",
            }
        )
        return RateLimited(
            f"Too many concurrent requests for {_describe(spec)}: at most {denial.limit} calls in flight at once. "
            "Retry when one of them has finished.",
            code="concurrency_limit_exceeded",
            headers=headers,
            extra=extra,
        )
    if denial.reason == "too_large":
        headers["x-should-retry"] = "false"
        return RateLimited(
            f"Request too large for {_describe(spec)}: its token estimate exceeds the limit of "
            f"{denial.limit} tokens per minute. Shorten the prompt or lower max_tokens.",
            code="request_too_large",
            headers=headers,
            extra=extra,
        )
    retry_ms = max(denial.retry_after_ms, 1)
    headers["retry-after"] = str(math.ceil(retry_ms / 1000))
    headers["retry-after-ms"] = str(retry_ms)
    unit = "requests" if denial.reason == "requests" else "tokens"
    return RateLimited(
        f"Rate limit reached for {_describe(spec)}: {denial.limit} {unit} per minute. "
        f"Retry after {retry_ms / 1000:.3f}s.",
        headers=headers,
        extra=extra,
    )


def reprice_error(
    denial: Denial, spec: ScopeSpec, asked: str, routed: str, old_nano: int, new_nano: int
) -> GatewayError:
    """A budget cannot cover the call once a policy routed it to a pricier model (``reserved``:
    only while the calls in flight hold it: retry)."""
    window = denial.window or "total"
    if denial.reason == "reserved":
        return RateLimited(
            f"Budget held by calls in flight for {_describe(spec)}: the policy routed this call from model "
            f"'{asked}' to '{routed}', whose reservation of ${nano_to_usd(new_nano):.6f} the {window} budget of "
            f"${nano_to_usd(denial.limit):.4f} can cover once the calls in flight finish. Retry after 1s.",
            code="budget_reserved",
            headers={
                "retry-after": "1",
                "retry-after-ms": str(max(denial.retry_after_ms, 1)),
                "x-should-retry": "true",
            },
            extra={"scope": spec.kind, "scope_id": spec.ident, "window": window, "routed_model": routed},
        )
    return BudgetExceeded(
        f"Budget exceeded for {_describe(spec)}: the policy routed this call from model '{asked}' to "
        f"'{routed}', whose reservation of ${nano_to_usd(new_nano):.6f} (up from ${nano_to_usd(old_nano):.6f}) "
        f"the {window} budget of ${nano_to_usd(denial.limit):.4f} cannot cover (spend plus calls in flight). "
        "Lower max_tokens, or wait for the budget window to reset.",
        headers={"x-wardgate-budget-remaining": format_usd(0)},
        extra={"scope": spec.kind, "scope_id": spec.ident, "window": window, "routed_model": routed},
    )


def charge_error(denial: Denial, spec: ScopeSpec, est_nano: int, what: str) -> GatewayError:
    """A priced action that is not a model call (``what``: an MCP tool call) that a budget
    cannot cover: ``budget_exceeded`` as for a model call, or ``budget_reserved`` (retry) while
    only the calls in flight hold the budget."""
    window = denial.window or "total"
    extra = {"scope": spec.kind, "scope_id": spec.ident, "window": window}
    if denial.reason == "reserved":
        return RateLimited(
            f"Budget held by calls in flight for {_describe(spec)}: the {window} budget of "
            f"${nano_to_usd(denial.limit):.4f} can cover {what} (${nano_to_usd(est_nano):.6f}) once the calls "
            "in flight finish. Retry after 1s.",
            code="budget_reserved",
            headers={"retry-after": "1", "retry-after-ms": "1000", "x-should-retry": "true"},
            extra=extra,
        )
    return BudgetExceeded(
        f"Budget exceeded for {_describe(spec)}: the {window} budget of ${nano_to_usd(denial.limit):.4f} "
        f"cannot cover {what} (${nano_to_usd(est_nano):.6f}; spend plus calls in flight). "
        "Wait for the budget window to reset.",
        headers={"x-wardgate-budget-remaining": format_usd(0)},
        extra=extra,
    )
