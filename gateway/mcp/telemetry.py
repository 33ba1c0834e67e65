"""Metrics and spans of MCP requests, and their audit event: what ``finish`` does per request.

Metrics (on the app's registry): ``wardgate_mcp_requests_total{server, method, tool, outcome}``
and ``wardgate_mcp_request_seconds{server, method}``. The ``tool`` label is the tool name only
for the tools a server listed (at most ``_MAX_TOOLS`` per server), else ``other``: an agent
must not be able to grow the metric without bound by calling made-up names.

Spans follow the OpenTelemetry MCP semantic conventions: ``mcp.method.name``,
``mcp.session.id`` (the agent-facing one), ``gen_ai.tool.name``, ``mcp.resource.uri``,
``gen_ai.prompt.name``, ``jsonrpc.request.id``, ``error.type``; the agent's ``traceparent`` is
continued.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.mcp.exchange import Exchange
from gateway.observability.labels import LabelledChildren

if TYPE_CHECKING:
    from gateway.observability.tracing import CallTracer
    from gateway.recorder import RecorderProvider

log = logging.getLogger("wardgate.mcp")
_MAX_TOOLS = 256
_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0)


class McpTelemetry:
    def __init__(
        self,
        registry: CollectorRegistry,
        recorder: RecorderProvider,
        tracer: CallTracer | None,
    ) -> None:
        self.requests = Counter(
            "wardgate_mcp_requests_total",
            "MCP requests by server, JSON-RPC method, tool and outcome.",
            ("server", "method", "tool", "outcome"),
            registry=registry,
        )
        self.latency = Histogram(
            "wardgate_mcp_request_seconds",
            "Time from an MCP request to its answer (to the end of a streamed answer).",
            ("server", "method"),
            buckets=_BUCKETS,
            registry=registry,
        )
        self._recorder = recorder
        self._tracer = tracer
        #: Tool names each server listed: the only ones used as a label value.
        self._known: dict[str, set[str]] = {}
        #: Labelled children by values (bounded: configured servers, known methods, listed tools).
        self._child = LabelledChildren()

    def learn_tools(self, server: str, names: list[str]) -> None:
        known = self._known.setdefault(server, set())
        for name in names:
            if len(known) >= _MAX_TOOLS:
                break
            known.add(name)

    def _tool_label(self, ex: Exchange) -> str:
        if ex.method != "tools/call" or ex.target is None:
            return ""
        return ex.target if ex.target in self._known.get(ex.server_name, ()) else "other"

    async def finish(self, ex: Exchange) -> None:
        ex.finished = time.perf_counter()
        if not ex.audited:
            return
        server = ex.server_name if ex.server is not None else "unknown"
        method = ex.method if ex.method is not None else ex.http_method
        self._child(self.requests, server, method, self._tool_label(ex), ex.outcome).inc()
        self._child(self.latency, server, method).observe(ex.finished - ex.started)
        if self._tracer is not None:
            self._span(ex)
        recorder = self._recorder()
        if recorder is None:
            return
        try:
            await recorder.record("mcp", ex.payload())
        except Exception:  # the answer is on its way; the failure is counted by the audit log
            log.exception("mcp audit event not recorded", extra={"request_id": ex.request_id})

    def _span(self, ex: Exchange) -> None:
        assert self._tracer is not None
        from opentelemetry.trace import SpanKind, Status, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        parent_header = ex.traceparent
        parent = (
            TraceContextTextMapPropagator().extract({"traceparent": parent_header}) if parent_header else None
        )
        method = ex.method or ex.http_method
        attrs: dict[str, Any] = {
            "mcp.method.name": method,
            "wardgate.mcp.server": ex.server_name,
            "wardgate.request_id": ex.request_id,
            "wardgate.decision": ex.decision,
        }
        session = ex.session
        if session:
            attrs["mcp.session.id"] = session
        if ex.message is not None and ex.message.id is not None:
            attrs["jsonrpc.request.id"] = str(ex.message.id)
        if ex.target is not None:
            key = {
                "tools/call": "gen_ai.tool.name",
                "resources/read": "mcp.resource.uri",
                "prompts/get": "gen_ai.prompt.name",
            }
            attrs[key.get(method, "wardgate.mcp.target")] = ex.target
        if method == "tools/call":
            attrs["gen_ai.operation.name"] = "execute_tool"
        if ex.agent_id:
            attrs["gen_ai.agent.id"] = ex.agent_id
        if ex.run_id:
            attrs["wardgate.run_id"] = ex.run_id
        if ex.principal is not None:
            attrs["wardgate.key_id"] = ex.principal.key_id
            attrs["wardgate.team"] = ex.principal.team
        duration_ns = int(((ex.finished or time.perf_counter()) - ex.started) * 1e9)
        end = time.time_ns()
        span = self._tracer.tracer.start_span(
            f"{method} {ex.target}" if ex.target else method,
            context=parent,
            kind=SpanKind.SERVER,
            start_time=end - duration_ns,
            attributes=attrs,
        )
        error = ex.error or ex.upstream_error
        if error is not None:
            span.set_attribute("error.type", error)
            span.set_status(Status(StatusCode.ERROR))
        span.end(end_time=end)
