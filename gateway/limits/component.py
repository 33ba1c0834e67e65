"""The limits component: reservations, budgets and rate limits, and their admin API.

Builds the store (``memory``, or ``redis`` with one connection pool for the app's lifespan),
the price book and the rules, appends the ``limit``, ``limit_reprice`` and ``settle`` stages,
the closer and the ``limits`` readiness check. Its routes (``/admin/spend``, budgets, limits,
reservations) reach the ``LimitsAdmin`` built at start, record every change in the audit log
(the ``Audit`` component it is given), and serve the audit log's settled-spend report
(``/admin/spend/report``) next to ``/admin/spend``.

Readiness: with ``on_store_error: deny`` an unreachable Redis makes the replica not ready
(every call would be refused). With ``local`` or ``allow`` the replica keeps serving by
design, so the check does not fail; it returns a status string saying it is degraded, and
``wardgate_limits_degraded`` is 1.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from gateway.limits.config import LimitsSettings
from gateway.registry import BaseComponent, section

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from gateway.audit.component import Audit
    from gateway.context import AppContext
    from gateway.limits.admin import LimitsAdmin
    from gateway.limits.memory import MemoryStore
    from gateway.limits.service import LimitsService
    from gateway.limits.store import LimitStore

log = logging.getLogger("wardgate.limits")


def _memory(cfg: LimitsSettings) -> MemoryStore:
    from gateway.limits.memory import MemoryStore

    return MemoryStore(
        lease_s=cfg.lease_s,
        settled_ttl_s=cfg.settled_ttl_s,
        window_s=cfg.window_s,
        expired=cfg.expired_reservations,
    )


async def build_store(cfg: LimitsSettings) -> LimitStore:
    from gateway.limits.store import StoreError

    if cfg.backend == "memory":
        return _memory(cfg)
    from gateway.limits.redis_store import RedisStore  # redis-py: ~0.3 s a memory store never needs

    store = RedisStore(
        cfg.redis_url,
        prefix=cfg.key_prefix,
        lease_s=cfg.lease_s,
        settled_ttl_s=cfg.settled_ttl_s,
        window_s=cfg.window_s,
        timeout_s=cfg.redis_timeout_s,
        pool_size=cfg.redis_pool_size,
        expired=cfg.expired_reservations,
        mode=cfg.redis_mode,
    )
    try:
        await store.start()
    except StoreError as exc:  # start anyway: calls follow on_store_error, scripts load on NOSCRIPT
        log.error("limits: Redis not reachable at startup (%s); on_store_error=%s", exc, cfg.on_store_error)
    return store


class Limits(BaseComponent):
    name = "limits"
    settings_model = LimitsSettings
    commands = (("spend", "gateway.limits.cli"),)

    def __init__(self, audit: Audit) -> None:
        self.audit = audit
        #: Set at start; ``None`` while limits are off.
        self.service: LimitsService | None = None

    def admin(self) -> LimitsAdmin | None:
        return self.service.admin if self.service is not None else None

    def routes(self) -> list[BaseRoute]:
        from gateway.limits import api

        return api.routes(api.Deps(self.admin, self.audit.recorder, self.audit.spend_report))

    async def start(self, ctx: AppContext) -> None:
        from gateway.limits.admin import LimitsAdmin
        from gateway.limits.metrics import LimitsMetrics
        from gateway.limits.pricing import PriceBook
        from gateway.limits.rules import LimitRules
        from gateway.limits.service import LimitsService
        from gateway.limits.stage import LimitStage, RepriceStage, SettleStage
        from gateway.limits.store import StoreError

        self.service = None
        cfg = section(ctx.settings, self.name, LimitsSettings)
        if not cfg.enabled:
            return
        policies = ctx.settings.policies_dir
        rules = LimitRules.load(
            policies / cfg.limits_file, run_ttl_s=cfg.run_ttl_s, agent_ttl_s=cfg.agent_ttl_s
        )
        prices = PriceBook.load(policies / cfg.pricing_file, unknown=cfg.unknown_price)
        ctx.start_files.add(policies / cfg.pricing_file)
        for entry in ctx.models.entries():  # warm the cache: the first genai-prices lookup loads its data
            for name in {entry.name, *(d.model for d in entry.deployments)}:
                prices.lookup(name)
        store = await build_store(cfg)
        local = _memory(cfg) if cfg.backend == "redis" and cfg.on_store_error == "local" else None
        service = LimitsService(
            cfg, store, rules, prices, ctx.models, LimitsMetrics(ctx.registry), local=local
        )
        service.admin = LimitsAdmin(service, ctx.keys)
        ctx.closers.append(service.close)

        def reload_rules() -> None:
            """limits.yaml changed: validate it fully, then swap (one assignment; calls read it once)."""
            service.rules = LimitRules.load(
                policies / cfg.limits_file, run_ttl_s=cfg.run_ttl_s, agent_ttl_s=cfg.agent_ttl_s
            )

        ctx.start_files.add(policies / cfg.limits_file, reload_rules)
        ctx.stages.append(LimitStage(service))
        ctx.stages.append(RepriceStage(service))
        ctx.stages.append(SettleStage(service))
        self.service = service

        async def ready() -> str:
            try:
                await store.ping()
            except StoreError:
                if cfg.on_store_error == "deny":
                    raise
                return f"degraded: shared store unreachable, on_store_error={cfg.on_store_error}"
            return service.status()

        ctx.ready_checks["limits"] = ready
