"""Settings for the policy engine (see gateway/policy/)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class PolicySettings(BaseModel):
    enabled: bool = True
    engine: Literal["regorus", "opa", "opa-lib"] = "regorus"
    opa_url: str = "http://127.0.0.1:8181"
    timeout_ms: float = 50.0
    #: Allow the call when the engine cannot decide (default: deny with 503).
    fail_open: bool = False
    #: Watch rego/ and policies/ and reload on change.
    watch: bool = True
