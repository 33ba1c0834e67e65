"""What the admin API and the CLI see of the cache: its stats and purges."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from gateway.cache.stage import CacheStage
from gateway.cache.store import CacheStoreError
from gateway.errors import ServiceUnavailable


class CacheService:
    def __init__(self, stage: CacheStage) -> None:
        self.stage = stage

    async def stats(self) -> dict[str, Any]:
        metrics = self.stage.metrics
        totals = dict(metrics.totals)
        looked_up = totals["hit"] + totals["miss"]
        return {
            "object": "cache.stats",
            "store": await self.stage.store.stats(),
            "semantic": self._semantic(),
            "process": {
                **totals,
                "hit_ratio": totals["hit"] / looked_up if looked_up else None,
                "saved_usd": metrics.saved_total_usd,
            },
        }

    def _semantic(self) -> dict[str, Any] | None:
        semantic = self.stage.semantic
        stats = getattr(semantic, "stats", None)
        return stats() if callable(stats) else None

    async def purge(self, scope: str | None, model: str | None) -> int:
        try:
            deleted = await self.stage.store.purge(scope, model)
            if self.stage.semantic is not None:
                await self.stage.semantic.purged(scope, model)
        except CacheStoreError as exc:
            raise ServiceUnavailable(f"The cache store could not purge: {exc}") from exc
        except (RedisError, OSError) as exc:
            raise ServiceUnavailable(f"The cache store could not purge: {type(exc).__name__}") from exc
        return deleted
