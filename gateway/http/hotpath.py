"""Pure-ASGI front door: the proxy endpoints skip Starlette's routing and middleware.

Why: the three proxy endpoints (and the MCP gateway's POSTs) carry all the traffic, and Starlette's exception middleware
wraps ``send`` for every message of every response; measured here it was ~10% of the
gateway's CPU per call. The proxy endpoints handle and render their own errors, so they gain
nothing from it. Everything else (admin API, health, metrics, OpenAPI, lifespan) goes
through the Starlette app as usual.

It also sheds load: beyond ``server.max_inflight_requests`` proxy calls in flight on this
worker, a call is answered 503 ``overloaded`` with ``retry-after`` before its body is read.
Admin, health and metrics requests are never shed, so an operator can still see and act.
"""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette

from gateway.errors import Overloaded
from gateway.http.asgi import ASGIApp, Receive, Scope, Send, send_error
from gateway.http.protocol import INTAKE_STATE


class HotPath:
    def __init__(
        self,
        app: Starlette,
        routes: dict[str, ASGIApp],
        max_inflight: int,
        prefixes: dict[str, ASGIApp] | None = None,
    ) -> None:
        """``routes``: POST endpoints by exact path; ``prefixes``: by path prefix (``/mcp/``:
        the MCP gateway's POSTs, which carry its traffic as the proxy endpoints carry theirs)."""
        self.app = app
        self._routes = routes
        self._prefixes = tuple((prefixes or {}).items())
        self._max_inflight = max_inflight
        #: Proxy calls of this app in flight now.
        self.inflight = 0

    @property
    def state(self) -> Any:
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path = scope["path"]
            endpoint = self._routes.get(path)
            if endpoint is None:
                for prefix, app in self._prefixes:
                    if path.startswith(prefix):
                        endpoint = app
                        break
            if endpoint is not None:
                if self.inflight >= self._max_inflight:
                    guard = scope.get("state", {}).get(INTAKE_STATE)
                    if guard is not None:
                        guard.count("inflight")
                    await send_error(
                        send,
                        Overloaded(
                            f"The gateway is at its limit of {self._max_inflight} calls in flight "
                            "(server.max_inflight_requests); retry shortly.",
                            headers={"retry-after": "1"},
                        ),
                    )
                    return
                scope["app"] = self.app
                self.inflight += 1
                try:
                    await endpoint(scope, receive, send)
                finally:
                    self.inflight -= 1
                return
        await self.app(scope, receive, send)
