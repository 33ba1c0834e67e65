"""Settings for the audit log (see gateway/audit/); metrics and tracing are in ``observability``.

Backends: ``sqlite`` (embedded default, WAL, ``<data_dir>/audit.db``), ``postgres``
(production, shared by replicas) and ``log`` (one JSON line per event, nothing to query).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from gateway.audit.anchor_s3 import AnchorS3Settings


class AuditSettings(BaseModel):
    enabled: bool = True
    backend: Literal["log", "sqlite", "postgres"] = "sqlite"
    #: SQLite file; unset = ``<data_dir>/audit.db``.
    sqlite_path: Path | None = None
    #: ``NORMAL`` (WAL) survives a process crash; ``FULL`` also a power loss, at one fsync per commit.
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    postgres_dsn: str = "postgresql://127.0.0.1:5432/test"
    #: Schema holding the audit tables (created and migrated on start).
    postgres_schema: str = "wardgate"
    postgres_pool_size: int = Field(default=4, ge=2)
    #: ``on`` (default): an acknowledged event survives a PostgreSQL crash (one WAL flush per
    #: group commit). ``off``: it survives a gateway crash, but a PostgreSQL crash may lose the
    #: last ~0.6 s of commits; much lower latency where fsync is slow.
    postgres_synchronous_commit: Literal["on", "remote_apply", "remote_write", "local", "off"] = "on"
    #: Fail the call (503) when its audit event cannot be made durable.
    fail_closed: bool = True
    #: Chain name prefix of this instance (default: the host name). Every process appends
    #: its own boot suffix, so replicas and workers never serialise on one chain.
    shard_id: str | None = None
    #: Group commit: an event waits at most this long for others to join its commit. 0 = the
    #: writer commits as soon as it is free (events that arrive during a commit share the next).
    batch_interval_ms: float = Field(default=0.0, ge=0.0)
    #: Most events per commit.
    batch_size: int = Field(default=512, ge=1)
    #: Events waiting for a commit beyond which ``record`` refuses at once (backpressure).
    max_pending: int = Field(default=50_000, ge=1)
    #: A checkpoint event (own head + witnessed heads of the other chains) this often...
    checkpoint_interval_s: float = Field(default=60.0, gt=0)
    #: ...or after this many events, whichever comes first.
    checkpoint_every: int = Field(default=10_000, ge=1)
    #: A chain whose head row was neither moved nor renewed for this long, and that has no
    #: ``chain_close``, is dead: the next start (or any live chain's sweep) marks it abandoned
    #: with a ``chain_abandoned`` event. Live chains renew every third of it.
    chain_lease_s: float = Field(default=300.0, gt=0)
    #: Other chains' heads are witnessed if they moved within this window.
    witness_window_days: float = Field(default=7.0, gt=0)
    #: Delete events older than this (a verifiable anchor keeps the rest checkable). None = keep all.
    retention_days: float | None = Field(default=None, gt=0)
    retention_check_s: float = Field(default=3600.0, gt=0)
    #: Content captures (a policy decision's ``capture: true``: the call's redacted messages
    #: and answer, outside the chain) are deleted after this many days; None = keep them.
    capture_retention_days: float | None = Field(default=30.0, gt=0)
    #: A capture larger than this is refused (recorded as such in the call's event).
    capture_max_bytes: int = Field(default=1_048_576, ge=1024)
    #: Ed25519 key that signs checkpoints and anchors (PEM, or a 32-byte hex seed), from this
    #: file or else from the environment variable ``signing_key_env``. Never in the database.
    signing_key_file: Path | None = None
    signing_key_env: str = "WARDGATE_AUDIT_SIGNING_KEY"
    #: Where each process writes a signed anchor of every chain's head: a file (appended), a
    #: directory (one new file each; e.g. another volume), an http(s) webhook, or
    #: ``s3://bucket/prefix`` (S3-compatible, one write-once object each). Needs a key.
    anchor_to: str | None = None
    #: Endpoint, region, credential env var names and object lock of ``s3://`` anchors.
    anchor_s3: AnchorS3Settings = Field(default_factory=AnchorS3Settings)
    #: How often (what an attacker with database access can rewrite undetected is bounded by it).
    anchor_interval_s: float = Field(default=60.0, gt=0)
    #: Also write every event as a JSON line (with its ``hash``, verifiable with
    #: ``wardgate audit verify --file``) beside the store, whatever ``server.log_level`` is.
    log_events: bool = False
    #: Where the ``log`` backend and ``log_events`` lines go (appended); unset = stderr.
    log_path: Path | None = None

    def resolved_sqlite_path(self, data_dir: Path) -> Path:
        return self.sqlite_path if self.sqlite_path is not None else data_dir / "audit.db"
