"""Sign-in with an admin key, and sign-out.

``GET /console/login`` shows the form, bound to a short-lived cookie of its own (there is no
session yet for a synchronizer token: double submit). ``POST /console/login`` checks that
token and the origin, authenticates the key exactly as the admin API does
(``KeyStore.authenticate_admin``), records the sign-in in the audit log, and starts a fresh
session: the browser gets a random id (HttpOnly, SameSite=Strict, Secure over TLS, path
``/console``); the store keeps the key's hash, never the key. ``POST /console/logout`` (CSRF
checked) ends the session server-side and clears the cookie.

Brute force: failed sign-ins are counted per client address and per key prefix
(``throttle.py``); at a limit, sign-ins are refused with 429 and ``Retry-After`` before the key
is checked. Each failed sign-in is an audit event (``console.sign_in_failed``: the address,
the counts, whether it reached a limit; never the key).
"""

from __future__ import annotations

import logging
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from gateway.admin.record import record_admin_action
from gateway.console import security
from gateway.console.config import ConsoleSettings
from gateway.console.deps import Deps
from gateway.console.sessions import new_token
from gateway.console.throttle import SCOPES, Verdict
from gateway.console.web import PREFIX, SESSION_COOKIE, PageRequest, read_form
from gateway.errors import AuditUnavailable, GatewayError, NotFound
from gateway.keys.store import hash_key

log = logging.getLogger("wardgate.console")

_LOGIN_TTL_S = 3600


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a console path only (never another site, ``//host``, ``\\``)."""
    target = unquote(value or "")
    if (
        target.startswith(PREFIX + "/")
        and not target.startswith("//")
        and "\\" not in target
        and "\n" not in target
        and "\r" not in target
        and not target.startswith(f"{PREFIX}/login")
    ):
        return target
    return PREFIX + "/"


def secure_cookie(request: Request, settings: ConsoleSettings) -> bool:
    if settings.cookie_secure == "always":
        return True
    if settings.cookie_secure == "never":
        return False
    return request.url.scheme == "https"


def _form(
    deps: Deps, request: Request, status: int = 200, error: str | None = None, retry_after: str | None = None
) -> Response:
    token = new_token()
    response = deps.templates.response(
        "login.html",
        status,
        user=None,
        csrf="",
        login_token=token,
        error=error,
        next=safe_next(request.query_params.get("next")),
    )
    if retry_after is not None:
        response.headers["retry-after"] = retry_after
    response.set_cookie(
        security.LOGIN_COOKIE,
        token,
        max_age=_LOGIN_TTL_S,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request, deps.settings()),
    )
    return response


async def login_page(request: Request, deps: Deps) -> Response:
    """The sign-in form (or the inbox, for a browser already signed in)."""
    manager = deps.sessions()
    if manager is None:
        return deps.templates.error(request, 404, "The console is not enabled on this gateway.")
    session = await manager.load(request.cookies.get(SESSION_COOKIE))
    if session is not None and deps.resolve(request, session) is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return _form(deps, request)


async def login(request: Request, deps: Deps) -> Response:
    """Exchange an admin key for a session."""
    manager = deps.sessions()
    if manager is None:
        return deps.templates.error(request, 404, "The console is not enabled on this gateway.")
    try:
        form = await read_form(request)
    except GatewayError as exc:
        return deps.templates.error(request, exc.status, exc.message)
    if not security.same_origin(request) or not security.tokens_match(
        request.cookies.get(security.LOGIN_COOKIE, ""), form.get(security.CSRF_FIELD)
    ):
        return deps.templates.error(
            request,
            403,
            "The sign-in form expired or did not come from this console. Reload it and try again.",
        )
    key = form.get("key", "").strip()
    throttle = deps.throttle()
    client = request.client.host if request.client else "unknown"
    try:
        if throttle is not None and not (verdict := await throttle.check(client, key)).allowed:
            return _throttled(deps, request, verdict)
        principal = request.app.state.ctx.keys.authenticate_admin(key) if key else None
        if principal is None:
            if throttle is not None:
                verdict = await throttle.failed(client, key)
                await _record_failure(deps, request, client, verdict)
            return _form(deps, request, 401, "That is not an admin key of this gateway.")
    except GatewayError as exc:
        return deps.templates.error(request, exc.status, exc.message)
    except Exception as exc:  # the counts' store cannot answer: fail closed
        log.error("console sign-in: the failed sign-in counts cannot be read (%s)", type(exc).__name__)
        return deps.templates.error(
            request, 503, "Sign-in is unavailable for a moment (its brute-force guard cannot be reached)."
        )
    try:
        await record_admin_action(deps.audit(), request, principal, "console.sign_in", {})
    except GatewayError as exc:
        return deps.templates.error(request, exc.status, exc.message)
    token, _ = await manager.begin("admin_key", hash_key(key), principal.key_id, principal.user)
    response = RedirectResponse(safe_next(form.get("next")), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        token,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=secure_cookie(request, deps.settings()),
    )
    response.delete_cookie(security.LOGIN_COOKIE, path=PREFIX)
    return response


def _throttled(deps: Deps, request: Request, verdict: Verdict) -> Response:
    """429: the form again, saying why and for how long (the key was not checked)."""
    who = " and ".join({"ip": "from this address", "key_prefix": "with this key"}[s] for s in verdict.refused)
    return _form(
        deps,
        request,
        429,
        f"Too many failed sign-ins {who}. Try again in {verdict.retry_after} seconds.",
        retry_after=verdict.retry_after,
    )


async def _record_failure(deps: Deps, request: Request, client: str, verdict: Verdict) -> None:
    """A failed sign-in in the audit log (``admin`` event, ``console.sign_in_failed``): the
    address and the failures counted, ``throttled`` when this one reached a limit; never the key.
    Raises ``AuditUnavailable`` when it cannot be stored (the sign-in is refused either way)."""
    audit = deps.audit()
    if audit is None:
        return
    payload = {
        "action": "console.sign_in_failed",
        "path": request.url.path,
        "client": client,
        "failures": dict(zip(SCOPES, verdict.counts, strict=True)),
        "throttled": list(verdict.refused),
        "retry_after_s": int(verdict.retry_after) if verdict.refused else None,
    }
    try:
        await audit.record("admin", payload)
    except AuditUnavailable:
        raise
    except Exception as exc:
        raise AuditUnavailable(
            f"The audit log could not record a failed sign-in: {type(exc).__name__}"
        ) from exc


async def logout(page: PageRequest) -> Response:
    """End this session (server-side) and clear the cookie."""
    manager = page.deps.sessions()
    if manager is None:
        raise NotFound("The console is not enabled on this gateway.")
    await manager.end(page.request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response
