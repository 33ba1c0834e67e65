"""Admin authentication: a separate key list with roles admin / approver / auditor.

Two surfaces authenticate admins: the admin API (a bearer key on every request,
``require_admin``) and the console (a session made from an admin key, ``gateway/console``).
Both refuse with the same check, ``check_roles``, so a role can never mean one thing in the
API and another in the console.
"""

from __future__ import annotations

from starlette.requests import Request

from gateway.errors import AuthenticationError, PermissionDenied
from gateway.keys.bearer import bearer_token
from gateway.keys.store import AdminPrincipal


def check_roles(principal: AdminPrincipal, *roles: str) -> AdminPrincipal:
    """``principal`` if it has one of ``roles`` (``admin`` satisfies every role); else 403."""
    if roles and not principal.has_role(*roles):
        raise PermissionDenied(f"This admin key lacks the role: one of {sorted(roles)} is required.")
    return principal


def require_admin(request: Request, *roles: str) -> AdminPrincipal:
    """The admin principal of this request; raises 401/403 unless it has one of ``roles``.

    ``admin`` satisfies every role. Agent keys are never admin keys (separate lists).
    """
    token = bearer_token(request.headers.get("authorization"))
    if token is None:
        raise AuthenticationError("Missing admin API key (Authorization: Bearer ...).")
    principal = request.app.state.ctx.keys.authenticate_admin(token)
    if principal is None:
        raise AuthenticationError("Invalid admin API key.")
    return check_roles(principal, *roles)
