"""The body of ``POST /admin/keys``, checked field by field into a keys.yaml entry.

Every refusal is a ``BadRequest`` naming the field in ``param`` (OpenAI's shape), so a typo
never becomes a key with surprising rights. Unknown fields are refused for the same reason.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.errors import BadRequest
from gateway.keys.store import ADMIN_ROLES
from gateway.limits.bounds import OutOfRange, check_count, check_usd

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$")
_FIELDS = ("team", "user", "id", "models", "roles", "tags", "limits", "budgets")
_LIMITS = ("requests_per_minute", "tokens_per_minute", "max_concurrent_requests")
_WINDOWS = ("day", "month", "total")
_MAX_ITEMS = 100
_MAX_TEXT = 256


def parse_create(body: Any) -> dict[str, Any]:
    """The entry fields of a new key (without id, hash and timestamps unless given)."""
    if not isinstance(body, dict):
        raise BadRequest('The body must be a JSON object: {"team": "...", ...}.')
    unknown = sorted(set(body) - set(_FIELDS))
    if unknown:
        raise BadRequest(f"Unknown field '{unknown[0]}'; allowed: {list(_FIELDS)}.", param=unknown[0])
    entry: dict[str, Any] = {"team": _name(body.get("team"), "team", required=True)}
    if body.get("id") is not None:
        entry["id"] = _name(body["id"], "id")
    entry["user"] = _text(body.get("user"), "user") if body.get("user") is not None else None
    roles = _strings(body.get("roles"), "roles", pattern=True)
    admin_roles = sorted(set(roles) & ADMIN_ROLES)
    if admin_roles:
        raise BadRequest(
            f"Role(s) {admin_roles} are admin roles: admin keys cannot be created through the API. "
            "Add them by hand to 'admin_keys' in policies/keys.yaml.",
            param="roles",
            code="admin_key_not_allowed",
        )
    entry["roles"] = roles
    entry["models"] = _strings(body.get("models"), "models") or ["*"]
    entry["tags"] = _tags(body.get("tags"))
    entry["limits"] = _limits(body.get("limits"))
    entry["budgets"] = _budgets(body.get("budgets"))
    return {k: v for k, v in entry.items() if k not in ("tags", "limits", "budgets") or v}


def _name(value: Any, param: str, *, required: bool = False) -> str:
    if value is None and required:
        raise BadRequest(f"'{param}' is required.", param=param)
    if not isinstance(value, str) or not _NAME.match(value):
        raise BadRequest(
            f"'{param}' must be 1-64 characters of letters, digits and . _ : @ - "
            "(starting with a letter or digit).",
            param=param,
        )
    return value


def _text(value: Any, param: str) -> str:
    if not isinstance(value, str) or not value or len(value) > _MAX_TEXT or not value.isprintable():
        raise BadRequest(f"'{param}' must be a printable string of 1-{_MAX_TEXT} characters.", param=param)
    return value


def _strings(value: Any, param: str, *, pattern: bool = False) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > _MAX_ITEMS:
        raise BadRequest(f"'{param}' must be a list of at most {_MAX_ITEMS} strings.", param=param)
    out = [_name(v, param) if pattern else _text(v, param) for v in value]
    return list(dict.fromkeys(out))


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > _MAX_ITEMS:
        raise BadRequest(f"'tags' must be an object of at most {_MAX_ITEMS} string values.", param="tags")
    return {_text(k, "tags"): _text(v, "tags") for k, v in value.items()}


def _limits(value: Any) -> dict[str, int]:
    if value is None:
        return {}
    if not isinstance(value, dict) or set(value) - set(_LIMITS):
        raise BadRequest(f"'limits' must be an object with {list(_LIMITS)}.", param="limits")
    try:
        return {k: check_count(v, f"limits.{k}") for k, v in value.items() if v is not None}  # type: ignore[misc]  # check_count returns an int for a value that is not None
    except OutOfRange as exc:
        raise BadRequest(str(exc), param=exc.param) from None


def _budgets(value: Any) -> dict[str, float]:
    """USD budgets per window: ``{"day": 5, "month": 100}`` (or the same under ``"usd"``)."""
    if value is None:
        return {}
    if isinstance(value, dict) and set(value) == {"usd"}:
        value = value["usd"]
    if not isinstance(value, dict) or set(value) - set(_WINDOWS):
        raise BadRequest(
            f"'budgets' must be an object with USD amounts for {list(_WINDOWS)}.", param="budgets"
        )
    try:
        return {k: check_usd(v, f"budgets.{k}") for k, v in value.items() if v is not None}  # type: ignore[misc]  # check_usd returns a float for a value that is not None
    except OutOfRange as exc:
        raise BadRequest(str(exc), param=exc.param) from None
