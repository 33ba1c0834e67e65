"""Virtual keys: ``wg-…`` bearer tokens mapped to principals, stored only as SHA-256 hashes.

Keys come from ``policies/keys.yaml`` (hashes only). Admin keys are a separate list with
roles ``admin``, ``approver``, ``auditor`` and optional approver groups, so a leaked agent
key can never reach the admin API and vice versa.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.call import Principal

KEY_PREFIX = "wg-"
ADMIN_ROLES = frozenset({"admin", "approver", "auditor"})


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key(prefix: str = KEY_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


@dataclass(slots=True, frozen=True)
class AdminPrincipal:
    key_id: str
    user: str
    roles: frozenset[str]
    groups: frozenset[str] = field(default_factory=frozenset)

    def has_role(self, *roles: str) -> bool:
        return "admin" in self.roles or any(r in self.roles for r in roles)


class KeyFileError(ValueError):
    """keys.yaml is malformed; the message names the entry."""


class KeyStore:
    def __init__(self, keys: dict[str, Principal], admin_keys: dict[str, AdminPrincipal]) -> None:
        self._keys = keys
        self._admin = admin_keys

    @classmethod
    def load(cls, path: Path) -> KeyStore:
        if not path.exists():
            return cls({}, {})
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        keys: dict[str, Principal] = {}
        for i, entry in enumerate(doc.get("keys") or []):
            digest, principal = _parse_key(entry, i)
            keys[digest] = principal
        admin: dict[str, AdminPrincipal] = {}
        for i, entry in enumerate(doc.get("admin_keys") or []):
            digest = _digest(entry, f"admin_keys[{i}]")
            roles = frozenset(entry.get("roles") or ["admin"])
            bad = roles - ADMIN_ROLES
            if bad:
                raise KeyFileError(f"admin_keys[{i}]: unknown roles {sorted(bad)}")
            admin[digest] = AdminPrincipal(
                key_id=str(entry["id"]),
                user=str(entry.get("user") or entry["id"]),
                roles=roles,
                groups=frozenset(entry.get("groups") or []),
            )
        return cls(keys, admin)

    def authenticate(self, key: str) -> Principal | None:
        return self._keys.get(hash_key(key))

    def authenticate_admin(self, key: str) -> AdminPrincipal | None:
        return self._admin.get(hash_key(key))

    def principals(self) -> list[Principal]:
        return list(self._keys.values())


def _digest(entry: Any, where: str) -> str:
    if not isinstance(entry, dict) or "id" not in entry:
        raise KeyFileError(f"{where}: each entry needs at least 'id' and 'sha256'")
    digest = str(entry.get("sha256") or "").lower().removeprefix("sha256:")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise KeyFileError(f"{where} ({entry['id']}): 'sha256' must be 64 hex chars (never the key itself)")
    return digest


def _parse_key(entry: Any, i: int) -> tuple[str, Principal]:
    digest = _digest(entry, f"keys[{i}]")
    return digest, Principal(
        key_id=str(entry["id"]),
        team=str(entry.get("team") or "default"),
        user=entry.get("user"),
        roles=tuple(entry.get("roles") or ()),
        models=tuple(entry.get("models") or ("*",)),
        tags={str(k): str(v) for k, v in (entry.get("tags") or {}).items()},
        limits=dict(entry.get("limits") or {}),
        budgets=dict(entry.get("budgets") or {}),
    )


def append_key(path: Path, entry: dict[str, Any]) -> None:
    """Append one key entry to keys.yaml, keeping the rest of the file as it is."""
    doc = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.exists() else {}
    doc.setdefault("keys", []).append(entry)
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
