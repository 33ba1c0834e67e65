"""The cache key of a call: a hash of the request as the provider will see it, within a scope.

What is hashed is the request body *after* the request guards: redacted (a caller's e-mail is
``<EMAIL_ADDRESS_1>``, so two callers whose prompts differ only in their own values share an
answer, and each gets their own values back from their own vault), routed (``model`` is the
model the policy sent it to) and capped (``max_tokens`` as the policy set it).

Every field is in the key except the few that cannot change the answer (``_NOT_KEYED``): an
unknown or new parameter is keyed by default, so a parameter that changes the answer can
never be left out and poison another caller's hit. The body is hashed as canonical JSON
(sorted keys, no whitespace) byte for byte: no Unicode normalisation, no number folding
(``0`` and ``0.0``, NFC and NFD, a homoglyph are different keys): a variant is a miss, never
someone else's answer.

The scope is part of the key: ``team:<team>`` (default), ``key:<key id>`` or ``global``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.call import Call

#: Body fields that never change the answer: how it is delivered (``stream``,
#: ``stream_options``), who asked (``user``, ``safety_identifier``), the caller's own labels
#: (``metadata``) and provider-side hints (``prompt_cache_key``, ``store``).
_NOT_KEYED = frozenset(
    {"stream", "stream_options", "user", "metadata", "safety_identifier", "prompt_cache_key", "store"}
)

#: Responses API fields whose answer depends on state held by the provider, which the key
#: cannot see (a conversation, a previous response, a background job), or an explicit ask to
#: store the answer upstream (a hit's id would not be known there): never cached.
PROVIDER_STATE = ("previous_response_id", "conversation", "background")


@dataclass(slots=True, frozen=True)
class CacheKey:
    scope: str
    model: str
    digest: str

    @property
    def id(self) -> str:
        return f"{self.scope}|{self.model}|{self.digest}"


def scope_id(call: Call, scope: str) -> str | None:
    """``team:<team>``, ``key:<key id>`` or ``global``; None without a principal."""
    principal = call.principal
    if scope == "global":
        return "global"
    if principal is None:
        return None
    if scope == "key":
        return f"key:{principal.key_id}"
    return f"team:{principal.team}"


def provider_state(body: dict[str, Any]) -> str | None:
    """The field that makes this request depend on state only the provider has, if any."""
    for name in PROVIDER_STATE:
        if body.get(name):
            return name
    if body.get("store") is True:
        return "store"
    return None


def cache_key(call: Call, scope: str) -> CacheKey:
    """The key of ``call``'s body (as it will be forwarded) within ``scope``."""
    body = call.body
    keyed = {k: v for k, v in body.items() if k not in _NOT_KEYED}
    model = body.get("model")
    model_name = model if isinstance(model, str) else call.model
    h = hashlib.blake2b(digest_size=20)
    h.update(call.endpoint.value.encode())
    h.update(b"\0")
    h.update(scope.encode())
    h.update(b"\0")
    h.update(orjson.dumps(keyed, option=orjson.OPT_SORT_KEYS))
    return CacheKey(scope, model_name, h.hexdigest())
