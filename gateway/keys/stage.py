"""First stage: who is calling, for which agent and run, and may they use this model.

The key itself is checked by the HTTP layer (``authenticate_key``) before the request body
is read: the key is in a header, so an unknown caller costs a dict lookup, never the parse
of a body it chose. This stage then checks what needs the body (model, agent identity).
"""

from __future__ import annotations

from typing import ClassVar

from gateway.call import Call, Principal
from gateway.errors import AuthenticationError, ModelNotAllowed, ModelNotFound
from gateway.identity import check_id
from gateway.keys.bearer import bearer_token
from gateway.keys.store import KeyStore
from gateway.models import ModelCatalog, model_allowed
from gateway.pipeline import Stage

_IDENTITY = (
    ("agent_id", "x-agent-id", "X-Agent-Id"),
    ("run_id", "x-run-id", "X-Run-Id"),
    ("parent_run_id", "x-parent-run-id", "X-Parent-Run-Id"),
)


class AuthenticateStage(Stage):
    name: ClassVar[str] = "authenticate"

    def __init__(self, keys: KeyStore, models: ModelCatalog) -> None:
        self._keys = keys
        self._models = models

    async def on_request(self, call: Call) -> None:
        principal = call.principal
        if principal is None:  # the HTTP layer normally did this before reading the body
            principal = call.principal = authenticate_key(self._keys, call.headers)
        _capture_identity(call)
        entry = self._models.get(call.model)
        if entry is None or call.endpoint not in entry.endpoints:
            raise ModelNotFound(
                f"The model '{call.model}' does not exist or is not available on {call.endpoint.value}.",
                param="model",
            )
        if not model_allowed(principal.models, call.model):
            raise ModelNotAllowed(f"This key may not use the model '{call.model}'.", param="model")


def authenticate_key(keys: KeyStore, headers: dict[str, str]) -> Principal:
    """The principal of the request's ``Authorization`` header; raises 401 without one."""
    token = bearer_token(headers.get("authorization"))
    if token is None:
        raise AuthenticationError(
            "You didn't provide an API key. Send your Wardgate virtual key as 'Authorization: Bearer wg-...'."
        )
    principal = keys.authenticate(token)
    if principal is None:
        raise AuthenticationError("Invalid API key. Wardgate virtual keys start with 'wg-'.")
    return principal


def _capture_identity(call: Call) -> None:
    """Agent identity from headers, else from the body's ``metadata`` (SDKs that cannot set headers).

    Every value given is checked against the one id rule (``gateway.identity``), the body's
    too when a header wins: both reach the provider and the policy input."""
    metadata = call.body.get("metadata")
    meta = metadata if isinstance(metadata, dict) else {}
    headers = call.headers
    for attr, header, label in _IDENTITY:
        in_body = meta.get(attr)
        if in_body is not None:
            in_body = check_id(in_body, f"metadata.{attr}", f"metadata.{attr}")
        value = headers.get(header)
        if value:
            setattr(call, attr, check_id(value, header, label))
        elif in_body is not None:
            setattr(call, attr, in_body)
