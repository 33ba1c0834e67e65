"""The keys.yaml shape, for ``gateway.strict``: a typo in an entry (``modles:``, ``budgets:
{dya: 5}``) would otherwise drop a restriction silently (the key would serve every model)."""

from __future__ import annotations

from pydantic import BaseModel


class _KeyLimits(BaseModel):
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    max_concurrent_requests: int | None = None
    rpm: int | None = None
    tpm: int | None = None
    concurrent: int | None = None


class _Windows(BaseModel):
    day: float | None = None
    month: float | None = None
    total: float | None = None


class _Budgets(_Windows):
    usd: _Windows | None = None


class _Entry(BaseModel):
    id: str
    sha256: str
    user: str | None = None
    roles: list[str] | None = None
    created_at: str | None = None
    created_by: str | None = None
    source: str | None = None
    disabled: bool | None = None
    revoked_at: str | None = None
    revoked_by: str | None = None


class KeyEntrySchema(_Entry):
    team: str | None = None
    models: list[str] | None = None
    tags: dict[str, str] | None = None
    limits: _KeyLimits | None = None
    budgets: _Budgets | None = None


class AdminKeyEntrySchema(_Entry):
    groups: list[str] | None = None


class KeysFileSchema(BaseModel):
    keys: list[KeyEntrySchema] | None = None
    admin_keys: list[AdminKeyEntrySchema] | None = None
