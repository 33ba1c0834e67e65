"""Typed settings: ``wardgate.yaml`` (path in ``WARDGATE_CONFIG``) overridden by env vars.

Env vars use the ``WARDGATE_`` prefix and ``__`` for nesting, e.g.
``WARDGATE_LIMITS__BACKEND=redis`` or ``WARDGATE_SERVER__PORT=9000``. The core settings
(``server``, the directories) are declared here; every other section is contributed by its
component (``name`` and ``settings_model``, see ``gateway/registry.py``) and assembled from the
component list (``gateway/components.py``), so adding a guard's settings never touches this file.
A component reads its section typed with ``registry.section(settings, name, Model)``.

Renamed keys keep working for a while, with a warning naming the new place:
``audit.metrics`` and ``audit.tracing`` are ``observability.metrics`` and
``observability.tracing`` (a key given in both places: the new one wins).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, SecretStr, create_model, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from gateway.components import compose
from gateway.registry import Component

log = logging.getLogger("wardgate.settings")

#: Deprecated keys: (old section, key) → new section (same key).
MOVED_KEYS = {("audit", "metrics"): "observability", ("audit", "tracing"): "observability"}


class ServerSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    #: With ``workers > 1`` the ``memory`` backends of limits and approvals would split their
    #: state per worker (a 3/min limit admitting 3 per worker, an approval only one worker
    #: sees), so ``wardgate serve`` refuses them; ``true`` accepts that, for tests and demos.
    allow_per_process_state: bool = False
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
    #: ``text`` (one line per record) or ``json`` (JSON lines with the request id, and the key
    #: id, team, agent and run of the call when the record is logged inside one; never secrets).
    log_format: Literal["text", "json"] = "text"
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


class CoreSettings(BaseSettings):
    """The sections every gateway has; ``Settings`` adds the components' sections."""

    model_config = SettingsConfigDict(env_prefix="WARDGATE_", env_nested_delimiter="__", extra="forbid")

    server: ServerSettings = Field(default_factory=ServerSettings)
    #: YAML data: keys.yaml, models.yaml, limits.yaml, pricing.yaml, approvals.yaml, ...
    policies_dir: Path = Path("policies")
    #: Rego modules (and their *_test.rego).
    rego_dir: Path = Path("rego")
    #: Where embedded stores keep files (SQLite audit log, admin-created keys).
    data_dir: Path = Path(".wardgate")

    @model_validator(mode="before")
    @classmethod
    def _move_renamed_keys(cls, data: Any) -> Any:
        """Read the old spelling of a renamed key (whatever source set it), with a warning."""
        if not isinstance(data, dict):
            return data
        for (old, key), new in MOVED_KEYS.items():
            section = data.get(old)
            if not isinstance(section, dict) or key not in section:
                continue
            log.warning("settings: %s.%s is deprecated, use %s.%s", old, key, new, key)
            data = {**data, old: {k: v for k, v in section.items() if k != key}}
            target = data.get(new) or {}
            if isinstance(target, BaseModel):
                target = target.model_dump(exclude_unset=True)
            moved = section[key]
            if isinstance(moved, BaseModel):
                moved = moved.model_dump(exclude_unset=True)
            given = target.get(key)
            if isinstance(given, BaseModel):
                given = given.model_dump(exclude_unset=True)
            if isinstance(moved, dict) and isinstance(given, dict):
                moved = {**moved, **given}
            elif given is not None:
                moved = given
            data[new] = {**target, key: moved}
        return data

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


def settings_class(components: Iterable[Component]) -> type[CoreSettings]:
    """A settings model with the core sections and one section per component that has one
    (``Settings`` is the gateway's own; a test adding a guard builds its own with this)."""
    sections: dict[str, Any] = {
        c.name: (c.settings_model, Field(default_factory=c.settings_model))
        for c in components
        if c.settings_model is not None
    }
    model = create_model("Settings", __base__=CoreSettings, __module__=__name__, **sections)
    model.__doc__ = "All settings: the core sections and one section per component that has one."
    return model


if TYPE_CHECKING:

    class Settings(CoreSettings):
        """The sections are typed by their components (``registry.section``)."""

        def __getattr__(self, name: str) -> Any: ...

else:
    Settings = settings_class(compose())
