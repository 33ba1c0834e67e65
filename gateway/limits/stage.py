"""The two pipeline stages of the limits component.

``limit`` runs right after ``authenticate``: one store round trip checks and consumes every
rate limit, reserves the cost bound on every budget and applies the run guards, before any
expensive work (redaction, policy, the model). ``limit_reprice`` runs just before ``forward``,
after the policy (which may route the call to another model) and any approval hold, and
re-prices the reservation for the model actually called. ``settle`` runs in the finish phase, always
(also after denials and failures), and books the real cost from ``call.usage``. It does not
hold the answer back: the HTTP layer runs it right after handing the answer to the transport,
with no await in between, and it writes the settle to the store synchronously, so the store
applies it before anything this worker sends for the client's next call (which is then
reserved against the real cost, not the estimate). Its reply is left to ``call.deferred``:
when an audit store does gate the answer, the settle's round trip overlaps the audit write.
"""

from __future__ import annotations

from typing import ClassVar

from gateway.call import Call
from gateway.limits.service import LimitsService
from gateway.pipeline import Stage


class LimitStage(Stage):
    name: ClassVar[str] = "limit"

    def __init__(self, service: LimitsService) -> None:
        self._service = service

    async def on_request(self, call: Call) -> None:
        await self._service.reserve(call)


class RepriceStage(Stage):
    """Right before ``forward``: re-prices the reservation if a policy routed the call to
    another model (a no-op otherwise: one string comparison)."""

    name: ClassVar[str] = "limit_reprice"

    def __init__(self, service: LimitsService) -> None:
        self._service = service

    async def on_request(self, call: Call) -> None:
        await self._service.reprice(call)


class SettleStage(Stage):
    name: ClassVar[str] = "settle"
    gates_answer = False

    def __init__(self, service: LimitsService) -> None:
        self._service = service

    async def on_finish(self, call: Call) -> None:
        # Issued now (no await before the write); only its reply is waited for, after the answer.
        pending = self._service.begin_settle(call)
        if pending is not None:
            call.deferred.append(pending)
