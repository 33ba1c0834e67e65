"""Settings for the human approval queue (see gateway/approvals/)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ApprovalSettings(BaseModel):
    enabled: bool = True
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = "wg"
    default_mode: Literal["hold", "defer"] = "hold"
    hold_s: float = 120.0
