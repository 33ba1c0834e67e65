"""Traces: a call span continuing the agent's traceparent, stage child spans, GenAI attributes."""

from __future__ import annotations

import pytest
from audit_helpers import finish, make_call
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.audit.stage import AuditStage
from gateway.audit.store.base import Filters
from gateway.observability.config import TracingSettings
from gateway.observability.traceparent import trace_id_of
from gateway.observability.tracing import CallTracer

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"


@pytest.fixture
def traced():
    exporter = InMemorySpanExporter()
    tracer = CallTracer(TracingSettings(enabled=True), exporter, batch=False)
    yield tracer, exporter
    tracer.provider.shutdown()


async def test_call_span_continues_the_agents_trace_with_stage_spans_and_genai_attributes(
    make_service, traced
):
    tracer, exporter = traced
    service = await make_service()
    call = make_call()
    call.traceparent = f"00-{TRACE}-{PARENT}-01"
    await finish(AuditStage(service, tracer=tracer, system_of=lambda c: "openai"), call)

    spans = exporter.get_finished_spans()
    root = next(s for s in spans if s.parent is not None and s.parent.span_id == int(PARENT, 16))
    assert f"{root.context.trace_id:032x}" == TRACE and root.kind == SpanKind.SERVER
    assert root.name == "chat gpt-4o-mini"
    a = root.attributes
    assert a["gen_ai.operation.name"] == "chat" and a["gen_ai.system"] == "openai"
    assert (
        a["gen_ai.request.model"] == "gpt-4o-mini" and a["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    )
    assert a["gen_ai.usage.input_tokens"] == 120 and a["gen_ai.usage.output_tokens"] == 30
    assert a["gen_ai.request.max_tokens"] == 64 and a["http.response.status_code"] == 200
    assert a["wardgate.run_id"] == "run-1" and a["gen_ai.agent.id"] == "agent-1"

    children = {s.name: s for s in spans if s.parent is not None and s.parent.span_id == root.context.span_id}
    assert {
        "stage authenticate",
        "stage limit",
        "stage policy_request",
        "stage forward",
        "stage settle",
        "stage audit",
    } <= set(children)
    forward = children["stage forward"]
    assert (
        forward.kind == SpanKind.CLIENT and abs((forward.end_time - forward.start_time) / 1e9 - 0.25) < 0.01
    )
    assert children["stage limit"].start_time >= children["stage authenticate"].end_time
    assert all(root.start_time <= s.start_time and s.end_time <= root.end_time for s in children.values())

    [event] = await service.store.query(Filters(request_id=call.request_id))
    assert event["trace_id"] == TRACE


async def test_call_without_traceparent_starts_a_trace_whose_id_is_in_the_event(make_service, traced):
    tracer, exporter = traced
    service = await make_service()
    call = make_call(outcome="failed")
    await finish(AuditStage(service, tracer=tracer), call)
    root = next(s for s in exporter.get_finished_spans() if s.parent is None)
    assert root.status.status_code.name == "ERROR" and root.attributes["error.type"] == "upstream_error"
    [event] = await service.store.query(Filters(request_id=call.request_id))
    assert event["trace_id"] == f"{root.context.trace_id:032x}"


async def test_unsampled_parent_records_no_spans_but_keeps_the_trace_id(make_service, traced):
    tracer, exporter = traced
    service = await make_service()
    call = make_call()
    call.traceparent = f"00-{TRACE}-{PARENT}-00"
    await finish(AuditStage(service, tracer=tracer), call)
    assert exporter.get_finished_spans() == ()
    [event] = await service.store.query(Filters(request_id=call.request_id))
    assert event["trace_id"] == TRACE


async def test_tracing_off_still_records_the_agents_trace_id(make_service):
    service = await make_service()
    call = make_call()
    call.traceparent = f"00-{TRACE}-{PARENT}-01"
    await finish(AuditStage(service), call)
    [event] = await service.store.query(Filters(request_id=call.request_id))
    assert event["trace_id"] == TRACE


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"ff-{TRACE}-{PARENT}-01",
        f"00-{'0' * 32}-{PARENT}-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE}-{PARENT}-01-extra",
        f"00-{TRACE.upper()}x-{PARENT}-01",
    ],
)
def test_invalid_traceparent_headers_give_no_trace_id(header):
    assert trace_id_of(header) is None


def test_future_traceparent_versions_may_carry_more_fields():
    assert trace_id_of(f"01-{TRACE}-{PARENT}-01-whatever") == TRACE
