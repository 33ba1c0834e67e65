"""Minimal audit: one structured JSON log line per call (used when the audit store is off).

It logs identities, decisions and numbers, never message contents or keys.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

import orjson

from gateway.call import Call
from gateway.errors import GatewayError
from gateway.pipeline import Stage

log = logging.getLogger("wardgate.audit")


def call_summary(call: Call) -> dict[str, Any]:
    p = call.principal
    error = call.error
    return {
        "request_id": call.request_id,
        "endpoint": call.endpoint.value,
        "model": call.model,
        "upstream_model": call.upstream_model,
        "deployment": call.deployment,
        "stream": call.stream,
        "key_id": p.key_id if p else None,
        "team": p.team if p else None,
        "agent_id": call.agent_id,
        "run_id": call.run_id,
        "status": error.status if isinstance(error, GatewayError) else (500 if error else call.upstream_status),
        "error": error.code if isinstance(error, GatewayError) else (type(error).__name__ if error else None),
        "decisions": [{"stage": d.stage, "phase": d.phase, "outcome": d.outcome, "reasons": d.reasons} for d in call.decisions],
        "input_tokens": call.usage.input_tokens if call.usage else None,
        "output_tokens": call.usage.output_tokens if call.usage else None,
        "cost_usd": call.cost_usd,
        "retries": call.retries,
        "latency_ms": round((time.perf_counter() - call.started) * 1000, 3),
    }


class AuditLogStage(Stage):
    name: ClassVar[str] = "audit"

    async def on_finish(self, call: Call) -> None:
        if log.isEnabledFor(logging.INFO):
            log.info(orjson.dumps(call_summary(call)).decode())
