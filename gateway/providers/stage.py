"""The stage that calls the provider, and reads usage from what comes back.

Streams: the gateway always asks a chat stream for ``stream_options.include_usage`` so the
call can be settled at its real cost, and strips the usage-only chunk again when the client
did not ask for it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from gateway.call import Call, Endpoint, Usage
from gateway.errors import GatewayError, ModelNotFound
from gateway.models import ModelCatalog
from gateway.pipeline import Stage
from gateway.providers.base import UpstreamRequest
from gateway.providers.router import Router
from gateway.sse import RawRead, SSEEvent

#: Client headers worth passing upstream (never its Authorization: that is the virtual key).
_FORWARD_HEADERS = ("traceparent", "tracestate", "openai-beta")


class ForwardStage(Stage):
    name: ClassVar[str] = "forward"

    def __init__(self, router: Router, models: ModelCatalog, timeout_s: float) -> None:
        self._router = router
        self._models = models
        self._timeout_s = timeout_s

    async def on_request(self, call: Call) -> None:
        routed_model = call.body.get("model", call.model)
        entry = self._models.get(routed_model)
        if entry is None or call.endpoint not in entry.endpoints:
            raise ModelNotFound(f"Routed model '{routed_model}' is not available.", param="model")
        body = dict(call.body)
        if call.stream and call.endpoint is Endpoint.CHAT:
            options = dict(body.get("stream_options") or {})
            call.client_wants_usage = bool(options.get("include_usage"))
            options["include_usage"] = True
            body["stream_options"] = options
        headers = {h: call.headers[h] for h in _FORWARD_HEADERS if h in call.headers}
        request = UpstreamRequest(call.endpoint, body, call.stream, headers, self._timeout_s, call.request_id)
        request.raw_reads = call.raw_reads
        try:
            routed = await self._router.send(entry, request)
        except Exception as exc:
            _record_attempts(call, request, exc)
            raise
        _record_attempts(call, request, None)
        response = routed.response
        call.deployment = routed.deployment.name
        call.upstream_model = routed.deployment.model
        call.retries = routed.retries
        call.upstream_status = response.status
        if response.json is not None:
            call.usage = (
                Usage.from_openai(response.json.get("usage")) if isinstance(response.json, dict) else None
            )
        call.response = response

    def passes_read(self, call: Call, read: RawRead) -> bool:
        """No event of the read names ``usage``: nothing to read or strip (``on_chunk``)."""
        return not read.contains(b'"usage"')

    async def on_chunk(self, call: Call, event: SSEEvent) -> Sequence[SSEEvent]:
        data = event.data
        if b'"usage"' not in data or (b'"usage":null' in data and b'"response.completed"' not in data):
            return (event,)
        obj = event.json
        if not isinstance(obj, dict):
            return (event,)
        if call.endpoint is Endpoint.RESPONSES:
            if obj.get("type") == "response.completed":
                call.usage = Usage.from_openai((obj.get("response") or {}).get("usage"))
            return (event,)
        usage = Usage.from_openai(obj.get("usage"))
        if usage is None:
            return (event,)
        call.usage = usage
        if not call.client_wants_usage and not obj.get("choices"):
            return ()
        return (event,)


def _record_attempts(call: Call, request: UpstreamRequest, exc: Exception | None) -> None:
    """What the router tried, on the call for the audit event: on a failure too, the last
    deployment tried and its status stand for the call's upstream outcome."""
    attempts = request.attempts
    call.upstream_attempts = attempts
    if not attempts:
        return
    last = attempts[-1]
    if exc is not None:
        if last.error is None:
            last.error = exc.code if isinstance(exc, GatewayError) else "internal_error"
        call.deployment = last.deployment
        call.upstream_status = last.status
        call.retries = len(attempts) - 1
