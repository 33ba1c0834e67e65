"""The keys component: the ``authenticate`` stage, the keys backend followed by every worker, the keys API.

The ``KeyStore`` itself is loaded from ``policies/keys.yaml`` before any component starts
(``ctx.keys``: the HTTP layer checks the key before it reads a body, and the admin APIs
authenticate admin keys with it). This component keeps it current from the configured backend
(``keys.backend``, ``gateway/keys/config.py``): keys.yaml followed by every worker, or Redis
shared by every replica (keys.yaml then imported once into an empty backend, and the source of
the admin keys). It registers readiness check ``keys`` and the first stage, serves
``/admin/keys`` (every creation and revocation recorded in the audit log of the ``Audit``
component it is given) and ``wardgate keys``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from gateway.keys.config import KeysSettings
from gateway.registry import BaseComponent, section

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from gateway.audit.component import Audit
    from gateway.context import AppContext
    from gateway.keys import api as api_module
    from gateway.keys.backend import KeyBackend
    from gateway.keys.postgres_backend import PostgresKeys
    from gateway.keys.redis_backend import RedisKeys
    from gateway.keys.store import KeyStore


class Keys(BaseComponent):
    name = "keys"
    settings_model = KeysSettings
    commands = (("keys", "gateway.keys.cli"),)

    def __init__(self, audit: Audit) -> None:
        self.audit = audit
        #: Set at start: this worker's keys backend (follower and writer).
        self.backend: KeyBackend | None = None

    def routes(self) -> list[BaseRoute]:
        from gateway.keys import api

        return api.routes(self.api_deps())

    def api_deps(self) -> api_module.Deps:
        """What key creation and revocation use (the admin API's and the console's)."""
        from gateway.keys import api

        return api.Deps(lambda: self.backend, self.audit.recorder)

    def openapi_paths(self) -> dict[str, dict[str, object]]:
        from gateway.keys import api

        return api.openapi_paths()

    async def start(self, ctx: AppContext) -> None:
        from gateway.keys.stage import AuthenticateStage

        cfg = section(ctx.settings, self.name, KeysSettings)
        path = ctx.settings.policies_dir / "keys.yaml"
        if cfg.backend != "file":
            self.backend = await _follow_shared(ctx, cfg, path)
        else:
            from gateway.keys.reload import follow

            self.backend = await follow(ctx.keys, path, ctx)
        ctx.stages.append(AuthenticateStage(ctx.keys, ctx.models))


def shared_backend(cfg: KeysSettings, store: KeyStore, path: Path) -> RedisKeys | PostgresKeys:
    """The shared backend ``cfg`` names (``redis`` or ``postgres``), not started yet."""
    if cfg.backend == "postgres":
        from gateway.keys.postgres_backend import PostgresKeys

        return PostgresKeys(
            store,
            cfg.postgres_dsn,
            path,
            schema=cfg.postgres_schema,
            timeout_s=cfg.redis_timeout_s,
            version_check_s=cfg.version_check_s,
        )
    from gateway.keys.redis_backend import RedisKeys

    return RedisKeys(
        store,
        cfg.redis_url,
        path,
        prefix=cfg.key_prefix,
        timeout_s=cfg.redis_timeout_s,
        version_check_s=cfg.version_check_s,
        mode=cfg.redis_mode,
    )


async def _follow_shared(ctx: AppContext, cfg: KeysSettings, path: Path) -> KeyBackend:
    """Serve the shared keys: only admin keys until the backend answers (fail closed), then follow it."""
    ctx.keys.keep_only_admin_keys()
    backend = shared_backend(cfg, ctx.keys, path)
    await backend.reload()  # down: not ready with the reason; the follower keeps retrying
    backend.start()
    ctx.ready_checks["keys"] = backend.ready
    ctx.closers.append(backend.close)
    return backend
