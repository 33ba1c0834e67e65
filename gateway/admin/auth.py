"""Admin authentication: a separate key list with roles admin / approver / auditor."""

from __future__ import annotations

from starlette.requests import Request

from gateway.errors import AuthenticationError, PermissionDenied
from gateway.keys.bearer import bearer_token
from gateway.keys.store import AdminPrincipal


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
    if roles and not principal.has_role(*roles):
        raise PermissionDenied(f"This admin key lacks the role: one of {sorted(roles)} is required.")
    return principal
