"""Small builders for the limits tests."""

from __future__ import annotations

import uuid
from typing import Any

from gateway.call import Call, Endpoint, Principal, Usage
from gateway.limits.service import LimitsService
from gateway.limits.stage import SettleStage
from gateway.limits.store import (
    LimitStore,
    Reservation,
    ReserveRequest,
    ReserveResult,
    ScopeSpec,
    usd_to_nano,
)
from gateway.models import ModelCatalog
from gateway.pipeline import Pipeline

TEAM = "acme"


def scopes(
    *,
    key_budget: float | None = None,
    rpm: int | None = None,
    tpm: int | None = None,
    run: str | None = None,
    day: float | None = None,
    month: float | None = None,
) -> tuple[ScopeSpec, ...]:
    """key k1 (with the given limits), team acme, and optionally a run."""
    nano = (
        None if day is None else usd_to_nano(day),
        None if month is None else usd_to_nano(month),
        None if key_budget is None else usd_to_nano(key_budget),
    )
    out = [ScopeSpec("key", "k1", rpm, tpm, nano), ScopeSpec("team", TEAM)]
    if run is not None:
        out.append(ScopeSpec("run", run, retention_ms=86_400_000))
    return tuple(out)


def request(
    specs: tuple[ScopeSpec, ...], est_usd: float = 0.001, tokens: int = 100, **kw: Any
) -> ReserveRequest:
    run_index = next((i for i, s in enumerate(specs) if s.kind == "run"), -1)
    return ReserveRequest(
        TEAM, uuid.uuid4().hex, specs, usd_to_nano(est_usd), tokens, run_index=run_index, team_index=1, **kw
    )


def reservation(req: ReserveRequest, result: ReserveResult, store: LimitStore) -> Reservation:
    return Reservation(
        req.team, req.rid, req.scopes, result.flags, req.est_nano, req.est_tokens, result.now_ms, store.name
    )


async def reserve(store: LimitStore, req: ReserveRequest) -> tuple[ReserveResult, Reservation | None]:
    result = await store.reserve(req)
    return result, (reservation(req, result, store) if result.ok else None)


def make_call(
    model: str = "mock-chat",
    *,
    endpoint: Endpoint = Endpoint.CHAT,
    body: dict[str, Any] | None = None,
    principal: Principal | None = None,
    run_id: str | None = None,
    agent_id: str | None = None,
) -> Call:
    body = (
        body
        if body is not None
        else {"model": model, "messages": [{"role": "user", "content": "hello"}], "max_tokens": 100}
    )
    return Call(
        request_id=uuid.uuid4().hex,
        endpoint=endpoint,
        body=body,
        headers={},
        model=model,
        principal=principal or Principal(key_id="k1", team=TEAM, user="ann"),
        run_id=run_id,
        agent_id=agent_id,
    )


def forwarded(call: Call, usage: Usage | None) -> Call:
    """Mark the call as forwarded (as the pipeline does) with the given usage."""
    call.timings["forward"] = 0.001
    call.usage = usage
    call.upstream_status = 200
    return call


def catalog(*names: str, max_output_tokens: int | None = None) -> ModelCatalog:
    """A model catalog of mock deployments (the estimate reads deployments and max output)."""
    from gateway.models import Deployment, ModelEntry

    entries = {}
    for name in names:
        endpoints = (Endpoint.EMBEDDINGS,) if "embed" in name else (Endpoint.CHAT, Endpoint.RESPONSES)
        entries[name] = ModelEntry(
            name, endpoints, (Deployment(f"{name}#0", "mock", name),), max_output_tokens=max_output_tokens
        )
    return ModelCatalog(entries)


def make_service(
    store: LimitStore,
    limits: dict[str, Any] | None = None,
    *,
    local: LimitStore | None = None,
    models: ModelCatalog | None = None,
    **settings: Any,
) -> LimitsService:
    """A LimitsService over ``store`` with limits.yaml content ``limits`` and the shipped prices."""
    from pathlib import Path

    from prometheus_client import CollectorRegistry

    from gateway.limits.config import LimitsSettings
    from gateway.limits.metrics import LimitsMetrics
    from gateway.limits.pricing import PriceBook
    from gateway.limits.rules import LimitRules, LimitsFile

    cfg = LimitsSettings(**settings)
    rules = LimitRules(
        LimitsFile.model_validate(limits or {}), run_ttl_s=cfg.run_ttl_s, agent_ttl_s=cfg.agent_ttl_s
    )
    prices = PriceBook.load(
        Path(__file__).resolve().parents[2] / "policies" / "pricing.yaml", unknown=cfg.unknown_price
    )
    service = LimitsService(
        cfg,
        store,
        rules,
        prices,
        models or catalog("mock-chat", "mock-embedding"),
        LimitsMetrics(CollectorRegistry()),
        local=local,
    )
    return service


async def settle(service: LimitsService, call: Call) -> None:
    """Run the ``settle`` stage as the HTTP layer does: its finish hook, then what it deferred
    (the store's reply) once the answer would be out."""
    pipeline = Pipeline([SettleStage(service)])
    await pipeline.finish(call)
    await pipeline.after_answer(call)
