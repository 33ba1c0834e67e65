"""What a run reports while it happens: one ``CallRecord`` per model call, approval news.

A ``Listener`` receives them; the default does nothing. The demo's live display and the
load generator's statistics are listeners, so the orchestrator itself stays free of
printing and bookkeeping for either.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass(slots=True)
class CallRecord:
    agent: str
    run_id: str
    model: str
    status: int | None = None  # HTTP status; None when the gateway was not reached
    code: str | None = None  # error code of a refusal (policy_denied, approval_pending, ...)
    latency_s: float = 0.0
    usage: dict[str, Any] | None = None
    approval: dict[str, Any] | None = None
    request_id: str | None = None  # the gateway's x-request-id (also in its audit log)
    at: float = field(default_factory=time.time)

    def finish(
        self,
        started: float,
        status: int | None,
        code: str | None,
        *,
        request_id: str | None = None,
        usage: dict[str, Any] | None = None,
        approval: dict[str, Any] | None = None,
    ) -> None:
        self.latency_s = time.perf_counter() - started
        self.request_id = request_id
        self.status = status
        self.code = code
        self.usage = usage
        self.approval = approval


class Listener:
    """Hooks called by the gateway client and the runner; override what you need."""

    def call_finished(self, record: CallRecord) -> None:
        """After every HTTP exchange for a model call (a 409 and its re-send are two)."""

    async def approval_pending(self, run_id: str, agent: str, approval_id: str, mode: str) -> None:
        """A deferred approval was created; the client starts polling it."""

    async def approval_decided(self, run_id: str, agent: str, approval_id: str, outcome: str) -> None:
        """An approval ended (approved, denied, expired, ...) as this client saw it."""

    def step_changed(self, run_id: str, step_id: str, status: str, detail: dict[str, Any]) -> None:
        """A step started, finished, failed, was denied, cancelled or skipped."""


class Listeners(Listener):
    """Fan out to several listeners."""

    def __init__(self, *listeners: Listener) -> None:
        self.listeners = [x for x in listeners if x is not None]

    def call_finished(self, record: CallRecord) -> None:
        for x in self.listeners:
            x.call_finished(record)

    async def approval_pending(self, run_id: str, agent: str, approval_id: str, mode: str) -> None:
        for x in self.listeners:
            await x.approval_pending(run_id, agent, approval_id, mode)

    async def approval_decided(self, run_id: str, agent: str, approval_id: str, outcome: str) -> None:
        for x in self.listeners:
            await x.approval_decided(run_id, agent, approval_id, outcome)

    def step_changed(self, run_id: str, step_id: str, status: str, detail: dict[str, Any]) -> None:
        for x in self.listeners:
            x.step_changed(run_id, step_id, status, detail)
