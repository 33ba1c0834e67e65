"""Helpers shared by the policy tests (engines of each kind, calls, metric reads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from gateway.call import Call, Endpoint, Principal
from gateway.callstate import Budget, RunTally
from gateway.policy.config import PolicySettings
from gateway.policy.engines.base import PolicyEngine
from gateway.policy.metrics import PolicyMetrics
from gateway.policy.reload import PolicyManager
from gateway.policy.service import PolicyService

REPO = Path(__file__).resolve().parents[2]
#: "opa" talks to the server through opa-python-client, "opa-aiohttp" with a plain POST,
#: "opa-wire" through the lean keep-alive client (engines/opa_wire.py).
ENGINE_KINDS = ("regorus", "opa-lib", "opa", "opa-aiohttp", "opa-wire")


def make_engine(kind: str, opa_url: str | None = None, timeout_s: float = 2.0) -> PolicyEngine:
    if kind == "regorus":
        from gateway.policy.engines.embedded import RegorusEngine

        return RegorusEngine(timeout_s=timeout_s)
    if kind == "opa-lib":
        from gateway.policy.engines.opa_lib import OpaLibEngine

        return OpaLibEngine(timeout_s=timeout_s)
    from gateway.policy.engines.opa_http import OpaHttpEngine

    if opa_url is None:
        raise ValueError("the opa engine needs a server URL")
    client = {"opa-aiohttp": "aiohttp", "opa-wire": "wire"}.get(kind, "opa-python-client")
    return OpaHttpEngine(opa_url, timeout_s=timeout_s, client=client)


def make_call(
    body: dict[str, Any],
    endpoint: Endpoint = Endpoint.CHAT,
    *,
    team: str = "demo",
    roles: tuple[str, ...] = (),
    tags: dict[str, str] | None = None,
    stream: bool = False,
    pii: dict[str, Any] | None = None,
    budget: Budget | None = None,
    run: RunTally | None = None,
) -> Call:
    return Call(
        request_id="req-1",
        endpoint=endpoint,
        body=body,
        headers={},
        stream=stream,
        model=str(body.get("model") or ""),
        principal=Principal(key_id="key-1", team=team, user="user-1", roles=roles, tags=dict(tags or {})),
        agent_id="agent-1",
        run_id="run-1",
        pii=pii,
        budget=budget,
        run=run,
    )


def metric(service: PolicyService, name: str, labels: dict[str, str]) -> float:
    value = service.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def build_service(
    engine: PolicyEngine,
    rego: Path = REPO / "rego",
    policies: Path = REPO / "policies",
    redaction: Any = None,
    approvals: bool = False,
    run_tests: bool = False,
    on_change: Any = None,
    **settings: Any,
) -> PolicyService:
    """A loaded ``PolicyService`` (``redaction``: the redactor it re-redacts with; ``approvals``:
    whether an approval stage is there). The set's own tests run only when asked (the reload tests
    cover that path; here it would only add ~0.3 s per service)."""
    metrics = PolicyMetrics(CollectorRegistry())
    manager = PolicyManager(engine, rego, policies, metrics=metrics, run_tests=run_tests, on_change=on_change)
    result = await manager.reload(reason="test")
    if result.result != "loaded":
        raise AssertionError(f"the policy set did not load: {result.errors}")
    return PolicyService(
        manager,
        PolicySettings(**settings),
        metrics,
        redaction=lambda: redaction,
        approvals=lambda: approvals,
    )
