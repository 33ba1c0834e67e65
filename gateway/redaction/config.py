"""Settings for PII and secret redaction (see gateway/redaction/)."""

from __future__ import annotations

from pydantic import BaseModel


class RedactionSettings(BaseModel):
    enabled: bool = True
