"""Who is calling: the headers that tie every model call to its agent, run and trace.

The gateway reads ``X-Agent-Id``, ``X-Run-Id`` and ``X-Parent-Run-Id`` for policies, budgets
and the audit timeline, and continues the W3C ``traceparent``: one trace per run (kept in
the checkpoint, so a resumed run continues the same trace), one new span id per call.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass


def new_run_id() -> str:
    return f"run-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(4)}"


def new_trace_id() -> str:
    return secrets.token_hex(16)


@dataclass(frozen=True, slots=True)
class RunIdentity:
    run_id: str
    trace_id: str
    parent_run_id: str | None = None

    def headers(self, agent_id: str) -> dict[str, str]:
        headers = {
            "X-Agent-Id": agent_id,
            "X-Run-Id": self.run_id,
            "traceparent": f"00-{self.trace_id}-{secrets.token_hex(8)}-01",
        }
        if self.parent_run_id:
            headers["X-Parent-Run-Id"] = self.parent_run_id
        return headers
