"""Settings for upstream calls: retries, backoff, circuit breaking, pools."""

from __future__ import annotations

from pydantic import BaseModel


class ProviderSettings(BaseModel):
    #: Attempts per call across deployments (1 = no retry). Retries happen only while
    #: nothing has been sent to the client yet.
    max_attempts: int = 3
    backoff_base_s: float = 0.05
    backoff_max_s: float = 2.0
    #: Default upstream timeout; a deployment may set its own.
    timeout_s: float = 120.0
    connect_timeout_s: float = 5.0
    #: Consecutive failures that open a deployment's circuit, and how long it stays open.
    circuit_failures: int = 5
    circuit_open_s: float = 30.0
    #: Connections per upstream pool.
    pool_size: int = 256
