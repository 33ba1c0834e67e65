"""Virtual keys: ``wg-…`` bearer tokens mapped to principals, stored only as SHA-256 hashes.

Keys come from ``policies/keys.yaml`` (hashes only), written by hand, by ``wardgate keys
create`` and by the admin API (``gateway/keys/keyfile.py`` edits it atomically). Admin keys are a
separate list with roles ``admin``, ``approver``, ``auditor`` and optional approver groups, so
a leaked agent key can never reach the admin API and vice versa.

A ``KeyStore`` is shared by reference (the authenticate stage, the admin APIs); a reload
``swap``s in the mappings of a newly parsed file, so every holder sees the new keys at once
and the hot path stays one dict lookup of the key's hash.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.call import Principal
from gateway.keys.schema import KeysFileSchema
from gateway.limits.bounds import check_key_limits
from gateway.strict import unknown_keys

KEY_PREFIX = "wg-"
ADMIN_ROLES = frozenset({"admin", "approver", "auditor"})


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def new_key(prefix: str = KEY_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def default_key_id(team: str, user: str | None) -> str:
    """An id for a key created without one; random, so it reveals nothing of the key itself."""
    return f"{team}-{user or 'key'}-{secrets.token_hex(3)}"


def utc_now() -> str:
    """A timestamp for ``created_at`` / ``revoked_at``: ISO 8601, UTC, second precision."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(slots=True, frozen=True)
class AdminPrincipal:
    key_id: str
    user: str
    roles: frozenset[str]
    groups: frozenset[str] = field(default_factory=frozenset)

    def has_role(self, *roles: str) -> bool:
        return "admin" in self.roles or any(r in self.roles for r in roles)


@dataclass(slots=True, frozen=True)
class KeyRecord:
    """What the admin API shows of a virtual key: everything but its hash."""

    principal: Principal
    created_at: str | None = None
    created_by: str | None = None
    source: str = "file"
    disabled: bool = False
    revoked_at: str | None = None
    revoked_by: str | None = None

    def public(self) -> dict[str, Any]:
        p = self.principal
        return {
            "object": "key",
            "id": p.key_id,
            "team": p.team,
            "user": p.user,
            "roles": list(p.roles),
            "models": list(p.models),
            "tags": dict(p.tags),
            "limits": dict(p.limits),
            "budgets": dict(p.budgets),
            "created_at": self.created_at,
            "created_by": self.created_by,
            "source": self.source,
            "disabled": self.disabled,
            "revoked_at": self.revoked_at,
            "revoked_by": self.revoked_by,
        }


class KeyFileError(ValueError):
    """keys.yaml is malformed; the message names the entry."""


@dataclass(slots=True)
class KeySet:
    """One parsed keys.yaml: what a ``KeyStore`` swaps in as a whole."""

    keys: dict[str, Principal]
    admin: dict[str, AdminPrincipal]
    records: dict[str, KeyRecord]


class KeyStore:
    def __init__(
        self,
        keys: dict[str, Principal],
        admin_keys: dict[str, AdminPrincipal],
        records: dict[str, KeyRecord] | None = None,
    ) -> None:
        self._keys = keys
        self._admin = admin_keys
        self._records = records if records is not None else {p.key_id: KeyRecord(p) for p in keys.values()}

    @classmethod
    def load(cls, path: Path) -> KeyStore:
        if not path.exists():
            return cls({}, {})
        return cls.from_set(parse_key_file(path.read_text(encoding="utf-8")))

    @classmethod
    def from_set(cls, key_set: KeySet) -> KeyStore:
        return cls(key_set.keys, key_set.admin, key_set.records)

    def swap(self, key_set: KeySet) -> None:
        """Make a newly parsed file active. Three plain assignments with no await between them:
        on the event loop no request can see a half-swapped store."""
        self._keys = key_set.keys
        self._admin = key_set.admin
        self._records = key_set.records

    def keep_only_admin_keys(self) -> None:
        """Drop every virtual key (a shared backend not loaded yet must not be bypassed by the
        file's copy, which may list keys revoked since); admin keys stay."""
        self.swap(KeySet({}, self._admin, {}))

    def authenticate(self, key: str) -> Principal | None:
        return self._keys.get(hash_key(key))

    def by_hash(self, digest: str) -> Principal | None:
        """The virtual key whose ``hash_key`` is ``digest`` (a caller that keeps the digest: the
        MCP gateway binds sessions to it without hashing the key twice)."""
        return self._keys.get(digest)

    def authenticate_admin(self, key: str) -> AdminPrincipal | None:
        return self._admin.get(hash_key(key))

    def admin_by_hash(self, digest: str) -> AdminPrincipal | None:
        """The admin key whose SHA-256 is ``digest`` as it stands now (the console's sessions keep
        the hash, never the key, and re-read the principal on every request: a revoked key or a
        changed role takes effect at once)."""
        return self._admin.get(digest)

    def principals(self) -> list[Principal]:
        """Active (not revoked) virtual keys."""
        return list(self._keys.values())

    def records(self) -> list[KeyRecord]:
        """Every virtual key of the file, revoked ones included (marked ``disabled``)."""
        return list(self._records.values())

    def record(self, key_id: str) -> KeyRecord | None:
        return self._records.get(key_id)

    def is_admin_id(self, key_id: str) -> bool:
        return any(a.key_id == key_id for a in self._admin.values())


def parse_key_file(text: str) -> KeySet:
    """Parse keys.yaml; raises ``KeyFileError`` naming the first bad entry."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise KeyFileError(_yaml_error(exc)) from exc
    return parse_key_doc(doc)


def parse_key_doc(doc: Any) -> KeySet:
    """Parse a keys document (keys.yaml's shape, whatever backend it came from)."""
    if not isinstance(doc, dict):
        raise KeyFileError("expected a mapping with 'keys' and 'admin_keys' at the top level")
    unknown = unknown_keys(doc, KeysFileSchema)
    if unknown:
        raise KeyFileError("; ".join(map(str, unknown)))
    keys: dict[str, Principal] = {}
    records: dict[str, KeyRecord] = {}
    for i, entry in enumerate(_entries(doc, "keys")):
        digest, principal = _parse_key(entry, i)
        record = _record(entry, principal)
        records[principal.key_id] = record
        if not record.disabled:
            keys[digest] = principal
    admin: dict[str, AdminPrincipal] = {}
    for i, entry in enumerate(_entries(doc, "admin_keys")):
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
    return KeySet(keys, admin, records)


def _yaml_error(exc: yaml.YAMLError) -> str:
    """Where and what, without PyYAML's quoted snippet of the file (it may show a hash line)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"not valid YAML{where}: {getattr(exc, 'problem', None) or type(exc).__name__}"


def _entries(doc: dict[str, Any], name: str) -> list[Any]:
    entries = doc.get(name) or []
    if not isinstance(entries, list):
        raise KeyFileError(f"'{name}' must be a list of entries")
    return entries


def _digest(entry: Any, where: str) -> str:
    if not isinstance(entry, dict) or "id" not in entry:
        raise KeyFileError(f"{where}: each entry needs at least 'id' and 'sha256'")
    digest = str(entry.get("sha256") or "").lower().removeprefix("sha256:")
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise KeyFileError(f"{where} ({entry['id']}): 'sha256' must be 64 hex chars (never the key itself)")
    return digest


def _parse_key(entry: Any, i: int) -> tuple[str, Principal]:
    digest = _digest(entry, f"keys[{i}]")
    try:
        check_key_limits(entry.get("limits"), entry.get("budgets"), f"keys[{i}]")
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
    except (TypeError, ValueError, AttributeError) as exc:
        raise KeyFileError(f"keys[{i}] ({entry['id']}): {exc}") from exc


def _record(entry: dict[str, Any], principal: Principal) -> KeyRecord:
    def text(name: str) -> str | None:
        value = entry.get(name)
        return None if value is None else str(value)

    return KeyRecord(
        principal,
        created_at=text("created_at"),
        created_by=text("created_by"),
        source=text("source") or "file",
        disabled=bool(entry.get("disabled")),
        revoked_at=text("revoked_at"),
        revoked_by=text("revoked_by"),
    )
