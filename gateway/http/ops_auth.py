"""The token that guards the operator endpoints (``/metrics``, ``/openapi.json``).

``server.metrics_token`` unset: both are open (bind them privately, as most Prometheus
targets are). Set: a request needs ``Authorization: Bearer <token>``, else 401. Both sides are
hashed before the constant-time compare, so neither the content nor the length of the
token leaks through the answer's timing.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from gateway.errors import AuthenticationError
from gateway.keys.bearer import bearer_token


def require_ops_token(request: Request) -> None:
    """Raises 401 unless the request carries the configured token (no-op when none is set)."""
    expected = request.app.state.ctx.settings.server.metrics_token
    if expected is None:
        return
    given = bearer_token(request.headers.get("authorization")) or ""
    want = hashlib.sha256(expected.get_secret_value().encode()).digest()
    got = hashlib.sha256(given.encode()).digest()
    if not hmac.compare_digest(want, got) or not given:
        raise AuthenticationError(
            f"{request.url.path} requires the operator token (server.metrics_token) as 'Authorization: Bearer ...'.",
            headers={"www-authenticate": "Bearer"},
        )
