"""What a finished call is booked at: its real cost from ``usage``, or what the provider may
have billed when there is none. Pure functions of the call; the service does the store work.
"""

from __future__ import annotations

from gateway.call import Call, Usage
from gateway.errors import UpstreamError, UpstreamTimeout
from gateway.limits.pricing import PriceBook
from gateway.limits.store import Reservation, nano_to_usd


def usage_cost(call: Call, prices: PriceBook) -> int | None:
    """The real cost of ``call.usage`` (nano-USD) at the price of the model that answered (a
    policy may have routed the call to another model than the one it was reserved for)."""
    u = call.usage
    if u is None:
        return None
    routed = call.body.get("model")
    model = routed if isinstance(routed, str) and routed else call.model
    price = prices.for_usage(model, call.upstream_model)
    return None if price is None else price.cost_nano(u.input_tokens, u.output_tokens, u.cached_tokens)


#: Usage beyond this many times the reservation's token bound (plus ``ABSURD_SLACK`` tokens, for
#: tokenizers that count a little differently from the estimate) is not believed.
ABSURD_FACTOR = 2
ABSURD_SLACK = 1000


def implausible(usage: Usage, res: Reservation) -> str | None:
    """Why the provider's usage cannot be booked as is (``None``: it can).

    The budget must not trust the provider blindly: negative counts would lower the spend
    below zero (and let the key overspend), non-numeric ones cannot be priced, and counts far
    beyond what the request could produce (its max output plus its prompt bound) are a broken
    or hostile upstream. Each is booked at the reservation instead: the most the call could
    honestly have cost."""
    if usage.malformed:
        return "non_numeric"
    if min(usage.input_tokens, usage.output_tokens, usage.cached_tokens) < 0:
        return "negative"
    if usage.total_tokens > ABSURD_FACTOR * res.est_tokens + ABSURD_SLACK:
        return "absurd"
    return None


def actual_cost(call: Call, res: Reservation, prices: PriceBook) -> tuple[int, int, str]:
    """(cost nano-USD, tokens, basis) the call is settled at; basis ``usage_<reason>`` when the
    provider's usage was not believed (see ``implausible``). A cache hit cost nothing: the
    provider was not called (what it saved is on ``call.cache``, for the audit event)."""
    if call.cache is not None and call.cache.status == "hit":
        return 0, 0, "cache_hit"
    if "forward" not in call.timings:
        return 0, 0, "not_forwarded"
    usage = call.usage
    if usage is not None:
        bad = implausible(usage, res)
        if bad is not None:
            return res.est_nano, res.est_tokens, f"usage_{bad}"
        cost = usage_cost(call, prices)
        if cost is None:
            return res.est_nano, usage.total_tokens, "reservation_unpriced"
        return cost, usage.total_tokens, "usage"
    upstream_refused = call.upstream_status is not None and call.upstream_status >= 400
    if upstream_refused or (
        isinstance(call.error, UpstreamError)
        and not isinstance(call.error, UpstreamTimeout)
        and call.response is None
    ):
        return 0, 0, "upstream_error"
    # A stream that broke or was cut by the client, a timeout, an answer without usage:
    # the provider may have billed it all, so book the reservation.
    return res.est_nano, res.est_tokens, "reservation"


def price_unbooked(call: Call, prices: PriceBook) -> None:
    """No reservation (store down and ``on_store_error: allow``): still price the call for the
    audit record, though nothing is booked."""
    state = call.limits
    if state is None or state.store != "none" or call.usage is None or "forward" not in call.timings:
        return
    cost = usage_cost(call, prices)
    if cost is not None:
        call.cost_usd = nano_to_usd(cost)
        state.settled_usd, state.settle_basis = call.cost_usd, "usage_unbooked"
