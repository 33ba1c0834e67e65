"""The keys component: the ``authenticate`` stage, keys.yaml followed by every worker, the keys API.

The ``KeyStore`` itself is loaded before any component starts (``ctx.keys``: the HTTP layer
checks the key before it reads a body, and the admin APIs authenticate admin keys with it);
this component follows ``policies/keys.yaml`` for it (readiness check ``keys``), registers
the first stage, serves ``/admin/keys`` (every creation and revocation recorded in the audit
log of the ``Audit`` component it is given) and ``wardgate keys``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from gateway.registry import BaseComponent

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from gateway.audit.component import Audit
    from gateway.context import AppContext
    from gateway.keys.reload import KeyReloader


class Keys(BaseComponent):
    name = "keys"
    commands = (("keys", "gateway.keys.cli"),)

    def __init__(self, audit: Audit) -> None:
        self.audit = audit
        #: Set at start: this worker's follower of keys.yaml.
        self.reloader: KeyReloader | None = None

    def routes(self) -> list[BaseRoute]:
        from gateway.keys import api

        return api.routes(api.Deps(lambda: self.reloader, self.audit.recorder))

    def openapi_paths(self) -> dict[str, dict[str, object]]:
        from gateway.keys import api

        return api.openapi_paths()

    async def start(self, ctx: AppContext) -> None:
        from gateway.keys.reload import follow
        from gateway.keys.stage import AuthenticateStage

        self.reloader = await follow(ctx.keys, ctx.settings.policies_dir / "keys.yaml", ctx)
        ctx.stages.append(AuthenticateStage(ctx.keys, ctx.models))
