"""The ``audit`` stage: one finish hook that records the event, the metrics and the trace.

It runs last (after ``settle``), on every call, also on denials and failures. The event is
built from the ``Call`` summary only (``events.build_call_event``: ids, decisions, counts),
never from message contents, keys or secrets. If the event cannot be made durable the call
fails closed with ``AuditUnavailable`` (503) unless ``audit.fail_closed`` is off; the HTTP
layer sends the answer only after this hook returned. Once the event is durable, the call's
metrics and span are left to ``call.deferred``: they need not hold the answer back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from gateway.audit.capture import attach
from gateway.audit.events import build_call_event, call_status, fallback_call_event
from gateway.call import Call
from gateway.errors import AuditUnavailable
from gateway.observability.traceparent import trace_id_of
from gateway.pipeline import Stage

if TYPE_CHECKING:
    from gateway.audit.service import AuditService
    from gateway.observability.metrics import Metrics
    from gateway.observability.tracing import CallTracer

log = logging.getLogger("wardgate.audit")


class AuditStage(Stage):
    name: ClassVar[str] = "audit"

    def __init__(
        self,
        service: AuditService | None,
        *,
        metrics: Metrics | None = None,
        tracer: CallTracer | None = None,
        fail_closed: bool = True,
        system_of: Callable[[Call], str | None] | None = None,
    ) -> None:
        self.service = service
        # Only a durable event holds the answer back; metrics and spans can follow it.
        self.gates_answer = service is not None
        self.metrics = metrics
        self.tracer = tracer
        self.fail_closed = fail_closed
        self.system_of = system_of

    async def on_finish(self, call: Call) -> None:
        if self.service is None and self.tracer is None:
            # Audit log off and tracing off: only metrics, without building an event.
            if self.metrics is not None:
                self.metrics.observe_call(call, call_status(call), time.perf_counter() - call.started)
            return
        started = time.perf_counter()
        span = None
        if self.tracer is not None:
            system = self.system_of(call) if self.system_of is not None else None
            span = self.tracer.start_call(call, system=system)
            trace_id = self.tracer.trace_id(span)
        else:
            trace_id = trace_id_of(call.traceparent)
        try:
            event = build_call_event(call, trace_id=trace_id)
        except Exception as exc:  # a malformed field from another stage must not leave the call unaudited
            log.exception("audit event of request %s built from the fallback", call.request_id)
            event = fallback_call_event(call, exc, trace_id=trace_id)
        if call.capture and self.service is not None:
            await attach(self.service.store, call, event, self.service.settings.capture_max_bytes)
        status = event["status"]
        failure: AuditUnavailable | None = None
        t0 = time.time_ns()
        if self.service is not None:
            try:
                await self.service.record_event(event)
            except AuditUnavailable as exc:
                failure = exc
                log.error(
                    "audit event %s of request %s not recorded: %s", event["id"], call.request_id, exc.message
                )
        t1 = time.time_ns()
        refused = failure is not None and self.fail_closed
        if refused:
            status = AuditUnavailable.status
        total_s = time.perf_counter() - call.started
        if self.service is not None and not refused:
            # The event is durable: the answer may go. Metrics and the span follow it, by
            # which time the pipeline has put this hook's own time in ``call.timings``.
            call.deferred.append(
                self._observe_later(call, status, total_s, span, event["decision"], (t0, t1))
            )
            return
        # Still inside the hook: the pipeline records its time only after it returned.
        hook_s = time.perf_counter() - started
        self._observe(call, status, total_s, span, event["decision"], (t0, t1), hook_s)
        if refused and failure is not None:
            raise failure

    async def _observe_later(
        self,
        call: Call,
        status: int | None,
        total_s: float,
        span: Any,
        decision: str,
        audit_window: tuple[int, int],
    ) -> None:
        self._observe(call, status, total_s, span, decision, audit_window, None)

    def _observe(
        self,
        call: Call,
        status: int | None,
        total_s: float,
        span: Any,
        decision: str,
        audit_window: tuple[int, int],
        hook_s: float | None,
    ) -> None:
        """The call's metrics and span. ``hook_s`` is this hook's time when it is not yet
        in ``call.timings`` (which ``observe_call`` reports per stage), else ``None``."""
        if self.metrics is not None:
            self.metrics.observe_call(call, status, total_s)
        if span is not None and self.tracer is not None:
            self.tracer.finish_call(span, call, status=status, decision=decision, audit_window=audit_window)
        if self.metrics is not None and hook_s is not None:
            self.metrics.observe_stage(self.name, hook_s)


class AuditReadyStage(Stage):
    """Refuses calls while the audit store has been unreachable since start (fail closed).

    Registered only when ``AuditService.start`` found the store down, right after
    ``authenticate``: such a call could not be audited, so it is answered 503
    ``audit_unavailable`` before it reserves budget or reaches the provider, instead of after
    (the ``audit`` stage's refusal of an event that cannot be made durable). Once the store
    opens, the check is one attribute read.
    """

    name: ClassVar[str] = "audit_ready"

    def __init__(self, service: AuditService) -> None:
        self.service = service

    async def on_request(self, call: Call) -> None:
        service = self.service
        if service.open_error is not None:
            raise AuditUnavailable(
                f"The audit log is unavailable: its store ({service.store.where}) is unreachable."
            )
