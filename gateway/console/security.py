"""What every console response carries, and the CSRF check every state change passes.

Headers (``SecurityHeaders``, an ASGI wrapper around the whole console, static files and
error pages included):

- ``Content-Security-Policy``: ``default-src 'self'``, scripts and styles only from the
  console's own static files (no inline script or style, no ``eval``), nothing may frame
  it, forms post only to itself, no ``<base>`` or plugins. Model- and agent-controlled text
  is escaped by the templates anyway; the policy is the second wall if one escape is missed.
- ``X-Frame-Options: DENY`` (older browsers), ``Referrer-Policy: same-origin`` (approval
  ids in URLs never leave for another site; not ``no-referrer``, under which a browser sends
  ``Origin: null`` on every POST and the origin check below could not tell this console's
  forms from a forged one), ``X-Content-Type-Options: nosniff``, ``Cross-Origin-Opener-Policy``
  and ``Cross-Origin-Resource-Policy: same-origin``, a ``Permissions-Policy`` denying
  sensors, and ``Cache-Control: no-store`` on everything but the versioned static files.

CSRF (``check_csrf``): a synchronizer token per session (``Session.csrf``), echoed by every
state-changing request in the ``csrf_token`` form field or the ``X-CSRF-Token`` header (htmx
sends it from ``hx-headers`` on ``<body>``), compared in constant time. A request that
carries an ``Origin`` must come from this host as well. The session cookie is
``SameSite=Strict`` on top. The sign-in form has no session yet: it is bound to a
short-lived cookie of its own (double submit, ``LOGIN_COOKIE``).
"""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import PermissionDenied

CSP = "; ".join(
    (
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    )
)

HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
)
_NO_STORE = (b"cache-control", b"no-store")

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
#: The sign-in form's own token (there is no session yet to bind it to).
LOGIN_COOKIE = "wardgate_console_login"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class CsrfFailed(PermissionDenied):
    code = "csrf_failed"


class SecurityHeaders:
    """Adds ``HEADERS`` to every response of the wrapped app (``no-store`` unless it set its
    own ``cache-control``, as the static files do)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() not in _OURS]
                headers += HEADERS
                if not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append(_NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


_OURS = frozenset(k for k, _ in HEADERS)


def same_origin(request: Request) -> bool:
    """A browser's ``Origin`` (when it sends one) names this host."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    if origin == "null":
        return False
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower()


def tokens_match(expected: str, given: str | None) -> bool:
    return bool(expected) and given is not None and hmac.compare_digest(expected.encode(), given.encode())


def check_csrf(request: Request, expected: str, form_token: str | None) -> None:
    """403 ``csrf_failed`` unless the request echoes ``expected`` and comes from this origin."""
    given = request.headers.get(CSRF_HEADER) or form_token
    if not same_origin(request) or not tokens_match(expected, given):
        raise CsrfFailed(
            "This form has expired or did not come from this console (CSRF check failed). "
            "Reload the page and try again."
        )
