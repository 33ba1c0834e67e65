"""What an MCP tool call costs, charged to the caller's budgets like a model call.

``pricing.yaml`` ``mcp_tools`` prices a call (USD per call, first matching ``server/tool``
glob). A priced ``tools/call`` is reserved on the same budgets as the caller's model calls
(key, team, user, agent, run and their combinations, and the run's cost cap), atomically in the
limits store (memory or Redis: one script), right before it goes to the server: after the
rate limits, the policy and any approval, so a refused or held call holds nothing. A budget
that cannot cover it refuses the call with a result with ``isError`` whose
``_meta["io.wardgate/error"]`` is the chat path's error (``budget_exceeded``; ``budget_reserved``
while only calls in flight hold the budget; ``limits_unavailable`` when the store cannot answer
and ``limits.on_store_error`` is ``deny``): the server is never called.

When the request ends the reservation is settled: the price when the server answered with a
result, or when it may have acted without the gateway seeing the answer (a timeout, a broken
or unreadable answer, an agent that left); nothing when the server could not be reached,
refused the HTTP request or answered with a JSON-RPC error. What was booked is the audit
event's cost (``data.mcp.cost_usd`` and the ``cost`` section the spend report sums).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from gateway.errors import GatewayError
from gateway.mcp.approval import tool_error
from gateway.mcp.exchange import Exchange
from gateway.mcp.relay import Answer, json_answer

META_ERROR = "io.wardgate/error"
#: Upstream failures after which the server cannot have acted on the call.
_NOT_RUN = frozenset({"unreachable", "status"})
#: The audit decision (and metrics outcome) of a refusal, by the error's code.
_DECISIONS = {"budget_exceeded": "budget_exceeded", "budget_reserved": "rate_limited"}


class ChargesPort(Protocol):
    """The limits service as MCP charges use it."""

    async def reserve_charge(
        self, principal: Any, agent_id: str | None, run_id: str | None, usd: float, what: str
    ) -> Any: ...

    def settle_charge(self, res: Any, usd: float) -> Awaitable[None] | None: ...


class McpCharges:
    def __init__(
        self, limits: Callable[[], ChargesPort | None], price: Callable[[str, str], float | None]
    ) -> None:
        self._limits = limits
        self._price = price

    async def run(self, ex: Exchange, tool: str, forward: Callable[[], Awaitable[Answer]]) -> Answer:
        """Reserve the call's price (if it has one and limits are on), then forward it."""
        price = self._price(ex.server_name, tool)
        service = self._limits()
        if not price or service is None or ex.principal is None:
            return await forward()
        what = f"this call of {tool!r} on MCP server {ex.server_name!r}"
        try:
            reservation = await service.reserve_charge(ex.principal, ex.agent_id, ex.run_id, price, what)
        except GatewayError as exc:
            ex.deny([exc.message], decision=_DECISIONS.get(exc.code, "error"))
            error = {**exc.to_dict()["error"], "status": exc.status}
            return json_answer(tool_error(ex, f"Wardgate: {exc.message}", {META_ERROR: error}))
        ex.charge = (reservation, price)
        return await forward()

    async def settle(self, ex: Exchange) -> None:
        """Book what the call cost and release its reservation (once, when the request ends)."""
        if ex.charge is None:
            return
        reservation, price = ex.charge
        ex.charge = None
        if ex.cost_usd is not None:  # a result came back: the server acted
            cost = price
        elif ex.answered or ex.upstream_error in _NOT_RUN:
            cost = 0.0
        else:  # no answer seen: it may have acted
            cost = price
        ex.cost_usd = cost
        service = self._limits()
        if reservation is None or service is None:
            return
        pending = service.settle_charge(reservation, cost)
        if pending is not None:
            await pending
