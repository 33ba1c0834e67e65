"""Asking the policy: one revision per call, one input and one decision per call phase.

``PolicyService.decide`` is the only place that talks to the engine on the hot path. The
first phase of a call takes the active snapshot and pins it on the call
(a slot of its own on the call), so both phases of a call are decided by the same
revision even if a reload lands in between (the new revision applies from the next call).
It builds the input once per phase, and turns every way an engine can fail (exception, timeout, unreachable server, undefined
or malformed decision) into a ``Verdict`` without a decision: the stage then fails closed
(503 ``policy_unavailable``) unless ``fail_open`` applies to the call. Either way the failure
is counted and recorded in the call's ``Decision``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from gateway.call import Call, Decision
from gateway.callstate import Slot
from gateway.policy.config import PolicySettings
from gateway.policy.decision import PolicyDecision
from gateway.policy.engines.base import to_path
from gateway.policy.errors import PolicyEvalError, short_error
from gateway.policy.input import build_input
from gateway.policy.metrics import PolicyMetrics
from gateway.policy.reload import PolicyManager

if TYPE_CHECKING:
    from gateway.policy.engines.base import Snapshot

log = logging.getLogger("wardgate.policy")
#: The engine snapshot a call's first phase took: both phases decide on one revision.
_SNAPSHOT: Slot[Snapshot] = Slot("policy.snapshot")

_SEVERITY = {"allow": 0, "approval": 1, "deny": 2, "error": 3}


@dataclass(frozen=True, slots=True)
class Verdict:
    """What one phase's policy evaluation gave: a decision, or why there is none."""

    phase: str
    revision: str | None
    decision: PolicyDecision | None
    error: str | None = None
    error_kind: str | None = None
    fail_open: bool = False
    elapsed_s: float = 0.0
    #: The input document the engine saw (by reference, no copy): the audit event keeps a
    #: content-free summary of it for the console's "why" panel.
    input: dict[str, Any] | None = None


class Reapplier(Protocol):
    """Redaction as the request stage needs it: re-redact a call with the actions a decision set."""

    async def reapply(self, call: Call) -> Any: ...


class PolicyService:
    def __init__(
        self,
        manager: PolicyManager,
        settings: PolicySettings,
        metrics: PolicyMetrics,
        *,
        redaction: Callable[[], Reapplier | None] | None = None,
        approvals: Callable[[], bool] | None = None,
    ) -> None:
        """``redaction()``: the redactor while redaction is on; ``approvals()``: whether the
        approval queue is on. Both are asked per call, so the order components start in does
        not matter."""
        self.manager = manager
        self.settings = settings
        self.metrics = metrics
        self._redaction = redaction
        self._approvals = approvals
        self._paths = {
            "request": settings.request_path,
            "response": settings.response_path,
            "mcp": settings.mcp_path,
        }
        #: The fast path knows the shipped decision rule only.
        self._mcp_default = to_path(settings.mcp_path) == "wardgate/mcp/decision"

    def redaction(self) -> Reapplier | None:
        """The redactor, if redaction is on (a decision's ``redact`` re-redacts the request)."""
        return self._redaction() if self._redaction is not None else None

    @property
    def engine_name(self) -> str:
        return self.manager.engine.name

    @property
    def approvals_enabled(self) -> bool:
        """Whether an approval stage will act on ``call.approval_ask``.

        Looked up per call rather than at start, so the order components start in does not
        matter.
        """
        return self._approvals is not None and self._approvals()

    def fails_open(self, call: Call) -> bool:
        return self.settings.fail_open or call.endpoint.value in self.settings.fail_open_endpoints

    async def decide(self, call: Call, phase: str, response: dict[str, Any] | None = None) -> Verdict:
        engine = self.engine_name
        t0 = time.perf_counter()
        revision: str | None = None
        doc: dict[str, Any] | None = None
        try:
            snapshot = _SNAPSHOT.get(call)
            if snapshot is None:
                snapshot = _SNAPSHOT.put(call, self.manager.engine.snapshot())
            revision = snapshot.revision
            doc = build_input(call, response)
            raw = await snapshot.evaluate(self._paths[phase], doc)
            decision = PolicyDecision.from_result(raw)
        except PolicyEvalError as exc:
            return self._failed(call, phase, revision, str(exc), exc.kind, t0)
        except Exception as exc:  # a bug in an engine binding must still fail closed, never 500
            log.exception("policy engine %s raised", engine, extra={"request_id": call.request_id})
            return self._failed(call, phase, revision, short_error(exc), "error", t0)
        elapsed = time.perf_counter() - t0
        self.metrics.observe(phase, engine, elapsed)
        return Verdict(phase, revision, decision, elapsed_s=elapsed, input=doc)

    async def try_decision(self, phase: str, doc: dict[str, Any]) -> dict[str, Any]:
        """The console's "try a decision": ``doc`` evaluated on the active revision, normalised
        like a call's; nothing counted or recorded, an engine error returned as text."""
        revision: str | None = None
        try:
            snapshot = self.manager.engine.snapshot()
            revision = snapshot.revision
            decision = PolicyDecision.from_result(await snapshot.evaluate(self._paths[phase], doc))
        except PolicyEvalError as exc:
            return {"revision": revision, "error": str(exc)}
        except Exception as exc:  # an engine binding's bug: shown, never a 500
            return {"revision": revision, "error": short_error(exc)}
        return {"revision": revision, "outcome": decision.outcome, "decision": decision.to_dict()}

    async def evaluate(self, phase: str, doc: dict[str, Any], request_id: str | None = None) -> Verdict:
        """One decision on an input built outside a model call (the MCP gateway's ``mcp``
        phase): the active revision, the same normalising, metrics and fail-closed handling
        as ``decide`` (``fail_open`` or the phase named in ``fail_open_endpoints`` opens it)."""
        engine = self.engine_name
        t0 = time.perf_counter()
        revision: str | None = None
        fail_open = self.settings.fail_open or phase in self.settings.fail_open_endpoints
        try:
            engine_ = self.manager.engine
            snapshot = engine_.snapshot()
            revision = snapshot.revision
            fast = engine_.mcp_fast(snapshot) if phase == "mcp" and self._mcp_default else None
            if fast is not None and fast.decide(doc) is not None:
                decision = PolicyDecision(allow=True)  # the shipped policy's plain allow (mcpfast.py)
            else:
                decision = PolicyDecision.from_result(await snapshot.evaluate(self._paths[phase], doc))
        except PolicyEvalError as exc:
            return self._failed(None, phase, revision, str(exc), exc.kind, t0, fail_open)
        except Exception as exc:  # a bug in an engine binding must still fail closed, never 500
            log.exception("policy engine %s raised", engine, extra={"request_id": request_id})
            return self._failed(None, phase, revision, short_error(exc), "error", t0, fail_open)
        elapsed = time.perf_counter() - t0
        self.metrics.observe(phase, engine, elapsed)
        self.metrics.decided(phase, decision.outcome)
        return Verdict(phase, revision, decision, elapsed_s=elapsed)

    def _failed(
        self,
        call: Call | None,
        phase: str,
        revision: str | None,
        error: str,
        kind: str,
        t0: float,
        fail_open: bool | None = None,
    ) -> Verdict:
        if fail_open is None:
            fail_open = call is not None and self.fails_open(call)
        self.metrics.errors.labels(phase, self.engine_name, kind, "true" if fail_open else "false").inc()
        log.warning(
            "policy engine %s could not decide (%s, %s): %s",
            self.engine_name,
            kind,
            "failing open" if fail_open else "failing closed",
            error,
            extra={"request_id": call.request_id if call is not None else None},
        )
        return Verdict(phase, revision, None, error, kind, fail_open, time.perf_counter() - t0)

    def record(self, call: Call, stage: str, verdict: Verdict, outcome: str, reasons: list[str]) -> None:
        """Append the call's ``Decision``, count it, and set the ``x-wardgate-*`` headers."""
        detail: dict[str, Any] = {
            "engine": self.engine_name,
            "latency_ms": round(verdict.elapsed_s * 1000, 3),
        }
        if verdict.decision is not None:
            detail["decision"] = verdict.decision.to_dict()
        if verdict.input is not None:
            detail["input"] = verdict.input
        if verdict.error is not None:
            detail.update(error=verdict.error, error_kind=verdict.error_kind, fail_open=verdict.fail_open)
        call.decisions.append(Decision(stage, verdict.phase, outcome, reasons, verdict.revision, detail))
        self.metrics.decided(verdict.phase, outcome)
        headers = call.response_headers
        previous = headers.get("x-wardgate-decision")
        if previous is None or _SEVERITY.get(outcome, 0) >= _SEVERITY.get(previous, 0):
            headers["x-wardgate-decision"] = outcome
        if verdict.revision is not None:
            headers["x-wardgate-policy-revision"] = verdict.revision

    async def ready(self) -> str | None:
        """Readiness: a revision is active and the engine answers (``/readyz``).

        Still ready (200) after a refused reload or with a file needing a restart: the last
        good revision serves, and one bad edit must not take every replica out of the load
        balancer; the status says ``degraded: ...`` with the reason.
        """
        await self.manager.engine.health()
        return self.manager.degraded()
