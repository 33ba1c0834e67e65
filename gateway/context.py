"""What lives for the app's lifespan: the core every component may use, and what they register.

``create_app`` builds one ``AppContext`` in its lifespan and stores it on ``app.state.ctx``;
nothing here is module-level. It holds the core (settings, virtual keys, model catalog,
metrics registry, the drain) and collects what components register in their ``start(ctx)``:
stages for the pipeline, closers for shutdown, readiness checks for ``/readyz``, hooks for
the drain at SIGTERM. Components do not find each other here: the composition root
(``gateway/components.py``) hands each the ones it uses.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry

from gateway.http.drain import Drain
from gateway.startfiles import StartFiles

if TYPE_CHECKING:
    from gateway.keys.store import KeyStore
    from gateway.models import ModelCatalog
    from gateway.pipeline import Pipeline, Stage
    from gateway.settings import Settings

Closer = Callable[[], Awaitable[None]]
#: Raises when not ready; may return a status string (e.g. "degraded: ...") while still ready.
ReadyCheck = Callable[[], Awaitable[str | None]]


@dataclass
class AppContext:
    settings: Settings
    keys: KeyStore
    models: ModelCatalog
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)
    stages: list[Stage] = field(default_factory=list)
    closers: list[Closer] = field(default_factory=list)
    ready_checks: dict[str, ReadyCheck] = field(default_factory=dict)
    pipeline: Pipeline | None = None
    #: Graceful shutdown: the calls in flight, and what begins at SIGTERM (``drain.on_begin``).
    drain: Drain = field(default_factory=Drain)
    #: Files read once at start (models.yaml, limits.yaml, ...): a change needs a restart.
    start_files: StartFiles = field(default_factory=StartFiles)

    async def close(self) -> None:
        for closer in reversed(self.closers):
            await closer()
