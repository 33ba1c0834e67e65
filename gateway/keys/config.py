"""Settings of the keys component (``keys:`` in ``wardgate.yaml``, ``WARDGATE_KEYS__…``).

``backend`` says where virtual keys live. ``file`` (the default) is ``policies/keys.yaml``
itself, right for one replica. ``redis`` or ``postgres`` shares them between replicas: keys.yaml is then only
the bootstrap (imported once into an empty backend) and the source of the admin keys, which
stay hand-managed in the file. Either way only SHA-256 hashes are stored, never a key.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway import redisurl


class KeysSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    #: ``file``: keys.yaml is the store (one replica); ``redis``: shared by every replica.
    backend: Literal["file", "redis", "postgres"] = "file"
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: ``standalone``: one Redis (or a Sentinel-managed primary) at ``redis_url``; ``cluster``:
    #: a Redis Cluster with ``redis_url`` as its seed node (database 0).
    redis_mode: redisurl.RedisMode = "standalone"
    #: Prefix of every Redis key of the keys backend (tests use one per run).
    key_prefix: str = "wg"
    postgres_dsn: str = "postgresql://127.0.0.1:5432/test"
    #: Schema of the ``keys`` and ``keys_meta`` tables (tests use one per run).
    postgres_schema: str = Field(default="wardgate", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,40}$")
    #: Redis / PostgreSQL connect and read timeout.
    redis_timeout_s: float = Field(default=2.0, gt=0, le=60)
    #: Safety net under the pub/sub invalidation: each worker compares the backend's version
    #: this often, so a lost message still reaches it within this bound (and a dead backend is
    #: noticed within it).
    version_check_s: float = Field(default=0.5, gt=0, le=60)

    @model_validator(mode="after")
    def _cluster_url(self) -> KeysSettings:
        if self.backend == "redis":
            redisurl.check_url(self.redis_url, self.redis_mode)
        return self
