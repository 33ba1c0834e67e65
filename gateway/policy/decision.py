"""A policy's ``decision`` document, checked and normalised.

Engines return whatever the Rego produced; this module turns it into one canonical shape
(docs/architecture.md) so the three engines give byte-identical decisions: reasons sorted and
de-duplicated (OPA and regorus order sets differently for objects), approval items sorted.
A decision that does not have the shape is an engine error (the call fails closed), never a
silent allow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.policy.errors import PolicyEvalError

NO_ALLOW_REASON = "no policy rule allowed the call"


class MalformedDecision(PolicyEvalError):
    def __init__(self, message: str) -> None:
        super().__init__(f"malformed policy decision: {message}", kind="malformed")


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    allow: bool
    deny: tuple[str, ...] = ()
    require_approval: tuple[dict[str, Any], ...] = ()
    redact: dict[str, str] = field(default_factory=dict)
    route: dict[str, Any] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    #: Store this call's redacted messages and answer beside its audit event (opt-in per team
    #: or key; the audit stage still refuses when redaction did not cover the call).
    capture: bool = False
    #: ``{"mode": exact|semantic|off, "ttl_s"?, "scope"?: team|key|global, "threshold"?}``;
    #: empty: not said.
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        """``deny`` beats ``approval`` beats ``allow``."""
        if self.deny:
            return "deny"
        if self.require_approval:
            return "approval"
        return "allow"

    @property
    def max_tokens(self) -> int | None:
        return self.limits.get("max_tokens")

    @property
    def model(self) -> str | None:
        return self.route.get("model")

    def to_dict(self) -> dict[str, Any]:
        return {
            "allow": self.allow,
            "deny": list(self.deny),
            "require_approval": [dict(i) for i in self.require_approval],
            "redact": dict(self.redact),
            "route": dict(self.route),
            "limits": dict(self.limits),
            "tags": dict(self.tags),
            "capture": self.capture,
            **({"cache": dict(self.cache)} if self.cache else {}),
        }

    @classmethod
    def from_result(cls, value: Any) -> PolicyDecision:
        if not isinstance(value, dict):
            raise MalformedDecision(f"expected an object, got {type(value).__name__}")
        allow = value.get("allow", False)
        if not isinstance(allow, bool):
            raise MalformedDecision("'allow' must be a boolean")
        deny = tuple(sorted({_reason(r) for r in _items(value.get("deny"), "deny")}))
        if not allow and not deny:
            deny = (NO_ALLOW_REASON,)
        approvals = tuple(
            sorted(
                (_approval(i) for i in _items(value.get("require_approval"), "require_approval")),
                key=_sort_key,
            )
        )
        redact = _object(value.get("redact"), "redact")
        if any(not isinstance(v, str) for v in redact.values()):
            raise MalformedDecision("'redact' maps entity types to action names")
        route = _object(value.get("route"), "route")
        if "model" in route and (not isinstance(route["model"], str) or not route["model"]):
            raise MalformedDecision("'route.model' must be a non-empty string")
        limits = _object(value.get("limits"), "limits")
        if "max_tokens" in limits:
            cap = limits["max_tokens"]
            if isinstance(cap, float) and cap.is_integer():
                limits = {**limits, "max_tokens": int(cap)}
            elif not isinstance(cap, int) or isinstance(cap, bool) or cap < 1:
                raise MalformedDecision("'limits.max_tokens' must be a positive integer")
        capture = value.get("capture", False)
        if not isinstance(capture, bool):
            raise MalformedDecision("'capture' must be a boolean")
        return cls(
            allow=allow,
            deny=deny,
            require_approval=approvals,
            redact=redact,
            route=route,
            limits=limits,
            tags=_object(value.get("tags"), "tags"),
            capture=capture,
            cache=_cache(value.get("cache")),
        )


CACHE_MODES = frozenset({"exact", "semantic", "off"})
CACHE_SCOPES = frozenset({"team", "key", "global"})


def _cache(value: Any) -> dict[str, Any]:
    """The decision's ``cache``: a mode the gateway knows, a positive ttl, a known scope. A
    wrong one is malformed (the call fails closed) rather than cached some default way."""
    cache = _object(value, "cache")
    if not cache:
        return {}
    if cache.get("mode") not in CACHE_MODES:
        raise MalformedDecision("'cache.mode' must be one of exact, semantic, off")
    ttl = cache.get("ttl_s")
    if ttl is not None and (not isinstance(ttl, int | float) or isinstance(ttl, bool) or not ttl > 0):
        raise MalformedDecision("'cache.ttl_s' must be a positive number")
    threshold = cache.get("threshold")
    if threshold is not None and (
        not isinstance(threshold, int | float) or isinstance(threshold, bool) or not 0 < threshold <= 1
    ):
        raise MalformedDecision("'cache.threshold' must be a number in (0, 1]")
    scope = cache.get("scope", "team")
    if scope not in CACHE_SCOPES:
        raise MalformedDecision("'cache.scope' must be one of team, key, global")
    unknown = set(cache) - {"mode", "ttl_s", "scope", "threshold"}
    if unknown:
        raise MalformedDecision(f"'cache' has unknown keys: {sorted(unknown)}")
    return {**cache, "scope": scope}


def _items(value: Any, name: str) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list | tuple | set | frozenset):
        return list(value)
    raise MalformedDecision(f"'{name}' must be a list (or set)")


def _object(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MalformedDecision(f"'{name}' must be an object")
    return dict(value)


def _reason(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("reason"), str):
        return value["reason"]
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def _approval(item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        return {"reason": item}
    if not isinstance(item, dict):
        raise MalformedDecision("'require_approval' items must be objects with a 'reason'")
    if not isinstance(item.get("reason"), str):
        raise MalformedDecision("each 'require_approval' item needs a string 'reason'")
    return dict(item)


def _sort_key(item: dict[str, Any]) -> bytes:
    return orjson.dumps(item, option=orjson.OPT_SORT_KEYS)
