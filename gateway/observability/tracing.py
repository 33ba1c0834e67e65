"""OpenTelemetry traces: one span per call, one child span per stage, GenAI attributes.

Spans are built *after the fact* from the finished ``Call``: the pipeline already measures
every stage (``call.timings``), so the call span starts at ``call.started_wall`` and the stage
spans are laid end to end in pipeline order with their measured durations. Why not live
spans: they would need a context variable and a start/stop around every hook on the hot path
(and in the pipeline, which is not ours), while this costs nothing when tracing is off and a
few microseconds per call when on. What it loses is exact offsets: a stage span shows how long
the stage took, not precisely when (streaming stages' time is the sum over all chunks).

The agent's W3C ``traceparent`` is continued (the call span is its child), and the trace id
goes into the audit event, so an event links to its trace and back. The provider is built per
app (never the global one), so tests and several apps in one process do not interfere.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from gateway.call import Call, Endpoint
from gateway.observability.config import TracingSettings
from gateway.registry import STAGE_ORDER

_OPERATION = {Endpoint.CHAT: "chat", Endpoint.RESPONSES: "chat", Endpoint.EMBEDDINGS: "embeddings"}
_PROPAGATOR = TraceContextTextMapPropagator()


def _exporter(settings: TracingSettings) -> SpanExporter | None:
    if settings.exporter == "none":
        return None
    if settings.exporter == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter(endpoint=settings.otlp_endpoint, headers=settings.otlp_headers or None)


class CallTracer:
    def __init__(
        self, settings: TracingSettings, exporter: SpanExporter | None = None, *, batch: bool = True
    ) -> None:
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": settings.service_name}),
            sampler=ParentBased(TraceIdRatioBased(settings.sample_ratio)),
        )
        exporter = exporter if exporter is not None else _exporter(settings)
        if exporter is not None:
            processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
            self.provider.add_span_processor(processor)
        self.tracer = self.provider.get_tracer("wardgate.gateway")

    def start_call(self, call: Call, *, system: str | None = None) -> Span:
        """Open the call span (backdated to the call's start), continuing the agent's trace."""
        parent = _PROPAGATOR.extract({"traceparent": call.traceparent}) if call.traceparent else None
        operation = _OPERATION.get(call.endpoint, call.endpoint.value)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": operation,
            "gen_ai.request.model": call.model or "",
            "gen_ai.system": system or "openai",
            "gen_ai.provider.name": system or "openai",
            "wardgate.endpoint": call.endpoint.value,
            "wardgate.request_id": call.request_id,
            "wardgate.stream": call.stream,
        }
        for key, attr in (
            ("max_tokens", "gen_ai.request.max_tokens"),
            ("temperature", "gen_ai.request.temperature"),
            ("top_p", "gen_ai.request.top_p"),
        ):
            value = call.body.get(key) if isinstance(call.body, dict) else None
            if isinstance(value, int | float) and not isinstance(value, bool):
                attrs[attr] = value
        if call.agent_id:
            attrs["gen_ai.agent.id"] = call.agent_id
        if call.run_id:
            attrs["wardgate.run_id"] = call.run_id
        if call.principal is not None:
            attrs["wardgate.key_id"] = call.principal.key_id
            attrs["wardgate.team"] = call.principal.team
        return self.tracer.start_span(
            f"{operation} {call.model}".strip(),
            context=parent,
            kind=SpanKind.SERVER,
            start_time=int(call.started_wall * 1e9),
            attributes=attrs,
        )

    def finish_call(
        self,
        span: Span,
        call: Call,
        *,
        status: int | None,
        decision: str,
        audit_window: tuple[int, int] | None = None,
    ) -> None:
        """Add the stage spans and the outcome, then end the call span now.

        ``audit_window`` is the live (start, end) of the audit write, the one stage that is
        still running while this span is built.
        """
        now_ns = time.time_ns()
        if span.is_recording():
            ctx = trace.set_span_in_context(span)
            cursor = int(call.started_wall * 1e9)
            names = [n for n in STAGE_ORDER if n in call.timings] + [
                n for n in call.timings if n not in STAGE_ORDER
            ]
            for name in names:
                if name == "audit":
                    continue
                start = min(cursor, now_ns)
                end = min(start + int(call.timings[name] * 1e9), now_ns)
                kind = SpanKind.CLIENT if name == "forward" else SpanKind.INTERNAL
                child = self.tracer.start_span(
                    f"stage {name}",
                    context=ctx,
                    kind=kind,
                    start_time=start,
                    attributes={"wardgate.stage": name, "wardgate.reconstructed": True},
                )
                if name == "forward" and call.deployment:
                    child.set_attribute("wardgate.deployment", call.deployment)
                    child.set_attribute("wardgate.retries", call.retries)
                child.end(end_time=end)
                cursor = end
            if audit_window is not None:
                self.tracer.start_span(
                    "stage audit",
                    context=ctx,
                    start_time=audit_window[0],
                    attributes={"wardgate.stage": "audit"},
                ).end(end_time=audit_window[1])
            self._outcome(span, call, status, decision)
        span.end(end_time=now_ns)

    @staticmethod
    def _outcome(span: Span, call: Call, status: int | None, decision: str) -> None:
        if call.upstream_model:
            span.set_attribute("gen_ai.response.model", call.upstream_model)
        if call.usage is not None:
            span.set_attribute("gen_ai.usage.input_tokens", call.usage.input_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", call.usage.output_tokens)
        if call.cost_usd is not None:
            span.set_attribute("wardgate.cost_usd", call.cost_usd)
        span.set_attribute("wardgate.decision", decision)
        if status is not None:
            span.set_attribute("http.response.status_code", status)
        if call.error is not None:
            span.set_attribute("error.type", getattr(call.error, "code", type(call.error).__name__))
            if status is None or status >= 500:
                span.set_status(Status(StatusCode.ERROR))

    @staticmethod
    def trace_id(span: Span) -> str | None:
        ctx = span.get_span_context()
        return f"{ctx.trace_id:032x}" if ctx.is_valid else None

    async def close(self) -> None:
        await asyncio.to_thread(self.provider.shutdown)
