"""The cache component: the ``cache`` stage, its store, its admin API and CLI.

Builds the store (``memory``: a bounded LRU per process; ``redis``: shared by replicas), the
stage, and a readiness check that reports (never fails: a cache that is down is a miss) the
store. ``clock`` is injectable so tests move time instead of sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from gateway.cache.config import CacheSettings
from gateway.registry import BaseComponent, section

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from gateway.audit.component import Audit
    from gateway.cache.semantic import SemanticIndex
    from gateway.cache.service import CacheService
    from gateway.context import AppContext


class Cache(BaseComponent):
    name = "cache"
    settings_model = CacheSettings
    commands = (("cache", "gateway.cache.cli"),)

    def __init__(self, audit: Audit, clock: Callable[[], float] = time.time) -> None:
        self.audit = audit
        self.clock = clock
        #: A semantic index to use instead of the built-in one (``semantic_cache``), for tests.
        self.semantic: SemanticIndex | None = None
        #: Set at start; ``None`` while the cache is off.
        self.service: CacheService | None = None

    def routes(self) -> list[BaseRoute]:
        from gateway.cache import api

        return api.routes(api.Deps(lambda: self.service, self.audit.recorder))

    async def start(self, ctx: AppContext) -> None:
        self.service = None
        cfg = section(ctx.settings, self.name, CacheSettings)
        if not cfg.enabled:
            return
        # Imported only now: the stage imports the semantic index and numpy, which a gateway
        # with the cache off (the default) never uses.
        from gateway.cache.metrics import CacheMetrics
        from gateway.cache.service import CacheService
        from gateway.cache.stage import CacheStage, CacheStoreStage
        from gateway.cache.store import CacheStore, MemoryStore

        store: CacheStore
        if cfg.store == "redis":
            from gateway.cache.redis_store import RedisStore

            store = RedisStore(cfg.redis_url, cfg.redis_prefix, cfg.redis_timeout_s, cfg.compress_min_bytes)
        else:
            store = MemoryStore(cfg.max_bytes, clock=self.clock)
        semantic = self.semantic
        if semantic is None and cfg.semantic_enabled:
            semantic = await self._semantic(cfg, ctx)
        stage = CacheStage(cfg, store, CacheMetrics(ctx.registry), semantic, clock=self.clock)
        ctx.stages.append(stage)
        ctx.stages.append(CacheStoreStage(stage))
        ctx.closers.append(store.close)
        service = self.service = CacheService(stage)

        async def ready() -> str:
            stats = await service.stage.store.stats() if cfg.store == "memory" else {"store": cfg.store}
            return f"{stats.get('store')}: serving (a store failure is a miss)"

        ctx.ready_checks[self.name] = ready

    async def _semantic(self, cfg: CacheSettings, ctx: AppContext) -> SemanticIndex:
        """The semantic index of this worker (its model loads on first use, or now)."""
        from gateway.cache.semantic_cache import SemanticCache

        feed = None
        if cfg.store == "redis":
            from gateway.cache.semantic_feed import RedisFeed

            feed = RedisFeed(cfg.redis_url, cfg.redis_prefix, cfg.redis_timeout_s)
        semantic = SemanticCache(cfg, feed, clock=self.clock)
        ctx.closers.append(semantic.close)
        if cfg.semantic_preload:
            await semantic.load()
        return semantic
