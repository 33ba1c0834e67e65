"""Typed settings: ``wardgate.yaml`` (path in ``WARDGATE_CONFIG``) overridden by env vars.

Env vars use the ``WARDGATE_`` prefix and ``__`` for nesting, e.g.
``WARDGATE_LIMITS__BACKEND=redis`` or ``WARDGATE_SERVER__PORT=9000``. Each subsystem owns
its section model in its own package (``gateway/<area>/config.py``); this module only
assembles them, so adding a setting never touches another subsystem's file.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from gateway.approvals.config import ApprovalSettings
from gateway.audit.config import AuditSettings
from gateway.limits.config import LimitsSettings
from gateway.policy.config import PolicySettings
from gateway.providers.config import ProviderSettings
from gateway.redaction.config import RedactionSettings


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    #: Request bodies above this are refused with 413 before they are read in full.
    max_body_bytes: int = Field(4 * 1024 * 1024, gt=0)
    # Connection hygiene, enforced per worker by the HTTP protocol (gateway/http/protocol.py):
    #: From connect (or a request's first byte) until its headers are complete; then 408 and close.
    header_timeout_s: float = Field(10.0, gt=0)
    #: From the end of the headers until the body is complete (slow bodies); then 408 and close.
    body_timeout_s: float = Field(30.0, gt=0)
    #: An idle keep-alive connection is closed after this (clients pool for ~5-60 s).
    keepalive_timeout_s: float = Field(30.0, gt=0)
    #: Request line + headers; larger: 431 and close (checked as bytes arrive, never buffered).
    max_header_bytes: int = Field(32 * 1024, ge=1024)
    #: Header fields per request; more: 431 and close.
    max_headers: int = Field(100, ge=8)
    #: Open connections per worker (also held below the process's file limit). At the cap a new
    #: connection displaces an idle or still-sending-headers one, else it gets 503 ``overloaded``.
    max_connections: int = Field(2048, ge=1)
    #: OpenAI-compatible calls in flight per worker; more: 503 ``overloaded`` with retry-after.
    max_inflight_requests: int = Field(1024, ge=1)
    #: After an early answer (401, 413, 503) the rest of the body is read and dropped, up to
    #: this, so the client (urllib too) reads the answer instead of a connection reset.
    drain_max_bytes: int = Field(16 * 1024 * 1024, ge=0)
    log_level: str = "info"
    #: Per-request access log lines (uvicorn's); the audit log line is always written.
    access_log: bool = False
    #: Proxies trusted to set X-Forwarded-For/-Proto (uvicorn's ``forwarded_allow_ips``, e.g.
    #: "10.0.0.0/8"), for the client address in access logs. Unset (default): the headers are
    #: ignored; the gateway never reads the client address itself, and uvicorn's rewrite
    #: otherwise runs on every request.
    forwarded_allow_ips: str | None = None
    #: SIGTERM → how long calls in flight may still run (the rest are cut cleanly, see README
    #: "Shutdown"); the worker exits within ``shutdown_delay_s + shutdown_grace_s``.
    shutdown_grace_s: float = Field(default=30.0, ge=0, le=3600)
    #: SIGTERM → how long the worker keeps accepting (``/readyz`` already 503) so a load
    #: balancer that polls readiness stops sending before the listener closes.
    shutdown_delay_s: float = Field(default=0.0, ge=0, le=300)
    #: When set, ``GET /metrics`` and ``GET /openapi.json`` require ``Authorization: Bearer <it>``
    #: (at least 16 characters: a short one is a typo or guessable).
    metrics_token: SecretStr | None = Field(default=None, min_length=16)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WARDGATE_", env_nested_delimiter="__", extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    #: YAML data: keys.yaml, models.yaml, limits.yaml, pricing.yaml, approvals.yaml, ...
    policies_dir: Path = Path("policies")
    #: Rego modules (and their *_test.rego).
    rego_dir: Path = Path("rego")
    #: Where embedded stores keep files (SQLite audit log, admin-created keys).
    data_dir: Path = Path(".wardgate")
    providers: ProviderSettings = Field(default_factory=ProviderSettings)
    limits: LimitsSettings = Field(default_factory=LimitsSettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    redaction: RedactionSettings = Field(default_factory=RedactionSettings)
    approvals: ApprovalSettings = Field(default_factory=ApprovalSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path = os.environ.get("WARDGATE_CONFIG", "wardgate.yaml")
        return (init_settings, env_settings, YamlConfigSettingsSource(settings_cls, yaml_file=path))
