"""The page framework: how a console page declares its routes, and what every route gets.

A page module (``gateway/console/pages/<name>.py``) exposes ``PAGE = Page(...)`` whose
``PageRoute``s name the handler, the methods and the admin roles. Every route is wrapped
(``endpoint``) so that, before the handler runs:

1. the session cookie is loaded (idle and absolute expiry); none, forged or expired → the
   sign-in page (303; for htmx, ``HX-Redirect``);
2. the principal is re-read from the session's subject (a revoked key ends the session);
3. the roles are checked with the admin API's own check (``gateway.admin.auth.check_roles``):
   403 page;
4. a state change (any method but GET/HEAD) has its form read (bounded like admin bodies) and
   its CSRF token checked (``security.check_csrf``): 403 page.

A ``GatewayError`` raised anywhere becomes an HTML error page with its status and message
(404 for unknown ids, 409 for a decided approval); any other exception is logged and answers
a plain 500 page, never a trace. Handlers get a ``PageRequest``: the request, the signed-in
principal, the session, the form, the console's ``Deps``, and ``render``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, quote

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from gateway.admin.auth import check_roles
from gateway.admin.body import read_admin_body
from gateway.console import security
from gateway.errors import GatewayError, NotFound
from gateway.keys.store import AdminPrincipal

if TYPE_CHECKING:
    from gateway.console.deps import Deps
    from gateway.console.sessions import Session

log = logging.getLogger("wardgate.console")

#: Where the console is mounted; every link and redirect is built from it.
PREFIX = "/console"
SESSION_COOKIE = "wardgate_console"

Handler = Callable[["PageRequest"], Awaitable[Response]]


@dataclass(frozen=True, slots=True)
class PageRoute:
    """One route of a page: ``path`` under ``/console``, its handler, who may call it."""

    path: str
    handler: Handler
    #: Admin roles, as the admin API names them for the same data (``admin`` passes all).
    roles: tuple[str, ...]
    methods: tuple[str, ...] = ("GET",)


@dataclass(frozen=True, slots=True)
class Page:
    """A console page: its navigation entry and its routes."""

    name: str
    title: str
    #: Shown in the navigation to these roles (each route still checks its own).
    roles: tuple[str, ...]
    routes: tuple[PageRoute, ...]
    #: The navigation link (default ``/console/<name>``); ``None``: not in the navigation.
    href: str | None = ""

    @property
    def link(self) -> str | None:
        if self.href is None:
            return None
        return self.href or f"{PREFIX}/{self.name}"


@dataclass(slots=True)
class PageRequest:
    request: Request
    user: AdminPrincipal
    session: Session
    deps: Deps
    form: dict[str, str] = field(default_factory=dict)

    def render(self, template: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """The template rendered with the layout's context (user, CSRF token, navigation)."""
        return self.deps.templates.response(
            template, status_code, user=self.user, csrf=self.session.csrf, request=self.request, **context
        )

    def allowed(self, *roles: str) -> bool:
        """Whether the signed-in principal has one of ``roles`` (to show or hide an action;
        the action's own route checks again)."""
        return self.user.has_role(*roles)


def login_redirect(request: Request) -> Response:
    """To the sign-in page, coming back here afterwards (htmx follows ``HX-Redirect``)."""
    target = f"{PREFIX}/login"
    if request.method == "GET" and not request.headers.get("hx-request"):
        target += "?next=" + quote(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"hx-redirect": target})
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response


async def read_form(request: Request) -> dict[str, str]:
    """A urlencoded form (the last value of each field), at most the admin body size."""
    raw = await read_admin_body(request)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return {}
    return {k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()}


def endpoint(route: PageRoute, deps: Deps) -> Callable[[Request], Awaitable[Response]]:
    """``route``'s handler behind the session, role and CSRF checks, errors as pages."""

    async def run(request: Request) -> Response:
        started, cpu = time.perf_counter(), time.thread_time()
        response = await checked(request)
        # Server time of the page (wall, and this thread's CPU, which a busy machine does not
        # inflate): what bench/console.py reads, and what a browser's devtools show.
        wall_ms = (time.perf_counter() - started) * 1000
        cpu_ms = (time.thread_time() - cpu) * 1000
        response.headers["server-timing"] = f"page;dur={wall_ms:.2f}, cpu;dur={cpu_ms:.2f}"
        return response

    async def checked(request: Request) -> Response:
        try:
            manager = deps.sessions()
            if manager is None:
                raise NotFound("The console is not enabled on this gateway.", code="console_disabled")
            session = await manager.load(request.cookies.get(SESSION_COOKIE))
            user = deps.resolve(request, session) if session is not None else None
            if session is None or user is None:
                if session is not None:
                    await manager.end(request.cookies.get(SESSION_COOKIE))
                return login_redirect(request)
            check_roles(user, *route.roles)
            form: dict[str, str] = {}
            if request.method not in security.SAFE_METHODS:
                form = await read_form(request)
                security.check_csrf(request, session.csrf, form.get(security.CSRF_FIELD))
            return await route.handler(PageRequest(request, user, session, deps, form))
        except GatewayError as exc:
            return deps.templates.error(request, exc.status, exc.message)
        except Exception:
            log.exception("console page %s failed", request.url.path)
            return deps.templates.error(request, 500, "Something went wrong on this page; it is logged.")

    run.__name__ = run.__qualname__ = getattr(route.handler, "__name__", "console_page")
    run.__doc__ = route.handler.__doc__
    return run
