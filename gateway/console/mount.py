"""The console as one ASGI app under ``/console``: sign-in, the pages of ``PAGES``, static files.

Everything is wrapped in ``SecurityHeaders`` (CSP and friends on every answer, error pages
and static files included); an unknown path under ``/console`` answers the 404 page.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route, Router
from starlette.types import Receive, Scope, Send

from gateway.console import signin
from gateway.console.deps import Deps
from gateway.console.pages import PAGES
from gateway.console.security import SecurityHeaders
from gateway.console.web import PREFIX, Page, PageRoute, endpoint


def load_pages(names: tuple[str, ...] = PAGES) -> list[Page]:
    """The registered pages, in navigation order (each module's ``PAGE``)."""
    pages: list[Page] = []
    for name in names:
        page = importlib.import_module(f"gateway.console.pages.{name}").PAGE
        if not isinstance(page, Page):
            raise TypeError(f"gateway.console.pages.{name}.PAGE is not a Page")
        pages.append(page)
    return pages


def _bind(
    handler: Callable[[Request, Deps], Awaitable[Response]], deps: Deps
) -> Callable[[Request], Awaitable[Response]]:
    async def run(request: Request) -> Response:
        return await handler(request, deps)

    run.__name__ = run.__qualname__ = handler.__name__
    run.__doc__ = handler.__doc__
    return run


def routes(deps: Deps, pages: list[Page]) -> list[BaseRoute]:
    """``/console`` (redirects to ``/console/``) and the mounted console."""
    deps.templates.env.globals["nav"] = tuple((p.title, p.link, p.roles) for p in pages if p.link)

    async def static(request: Request) -> Response:
        return deps.templates.static_response(request.path_params["name"])

    inner: list[BaseRoute] = [
        Route("/login", _bind(signin.login_page, deps), methods=["GET"]),
        Route("/login", _bind(signin.login, deps), methods=["POST"]),
        Route(
            "/logout", endpoint(PageRoute("/logout", signin.logout, (), ("POST",)), deps), methods=["POST"]
        ),
        Route("/static/{name}", static, methods=["GET"]),
    ]
    for page in pages:
        inner += [Route(r.path, endpoint(r, deps), methods=list(r.methods)) for r in page.routes]

    async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        await deps.templates.error(request, 404, "There is no console page at this address.")(
            scope, receive, send
        )

    async def to_root(request: Request) -> Response:
        return RedirectResponse(PREFIX + "/", status_code=307)

    router = Router(inner, default=not_found)
    router.redirect_slashes = False
    return [
        Route(PREFIX, to_root, methods=["GET"], include_in_schema=False),
        Mount(PREFIX, app=SecurityHeaders(router)),
    ]
