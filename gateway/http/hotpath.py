"""Pure-ASGI front door: the proxy endpoints skip Starlette's routing and middleware.

Why: the three proxy endpoints carry all the traffic, and Starlette's exception middleware
wraps ``send`` for every message of every response; measured here it was ~10% of the
gateway's CPU per call. The proxy endpoints handle and render their own errors, so they gain
nothing from it. Everything else (admin API, health, metrics, OpenAPI, lifespan) goes
through the Starlette app as usual.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from gateway.http.asgi import ASGIApp, Receive, Scope, Send


class HotPath:
    def __init__(self, app: Starlette, routes: dict[str, ASGIApp]) -> None:
        self.app = app
        self._routes = routes

    @property
    def state(self) -> Any:
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            endpoint = self._routes.get(scope["path"])
            if endpoint is not None:
                scope["app"] = self.app
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)
