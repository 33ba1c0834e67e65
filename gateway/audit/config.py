"""Settings for the audit log (see gateway/audit/)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class AuditSettings(BaseModel):
    enabled: bool = True
    backend: Literal["log", "sqlite", "postgres"] = "log"
    postgres_dsn: str = "postgresql://127.0.0.1:5432/test"
    #: Fail the call (503) when its audit event cannot be made durable.
    fail_closed: bool = True
