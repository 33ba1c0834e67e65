"""Reading ``Authorization: Bearer <token>``: the one parser every caller of a key shares.

Agent keys (the authenticate stage, ``/v1/models``), admin keys (``require_admin``), the
approval caller API and the ops token of ``/metrics`` all read the header the same way, so a
spelling one of them accepts (``bearer`` in lower case, extra spaces) is accepted by all.
"""

from __future__ import annotations


def bearer_token(authorization: str | None) -> str | None:
    """The token of a ``Bearer`` authorization header; ``None`` for any other scheme or none."""
    if not authorization:
        return None
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
