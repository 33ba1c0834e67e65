"""Settings for rate limits and budgets (see gateway/limits/)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class LimitsSettings(BaseModel):
    enabled: bool = True
    #: ``memory`` is the embedded default (one process); ``redis`` shares limits across replicas.
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Prefix of every Redis key this gateway writes (tests use one per run).
    key_prefix: str = "wg"
    #: What to do when the store cannot answer: fail closed (deny), allow, or fall back to local limits.
    on_store_error: Literal["deny", "allow", "local"] = "deny"
