"""Settings for the human approval queue (see gateway/approvals/).

The same shape is read from ``policies/approvals.yaml`` (groups, webhooks, per-tool rules,
defaults), which is merged over these settings at setup, so reviewers' routing lives beside
the other policy data and reloads with it in deployments that template the file.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from gateway import redisurl

#: The openai SDK gives up after 600 s; a hold must end (and answer) before that.
MAX_HOLD_S = 590.0

Mode = Literal["hold", "defer"]


class WebhookSettings(BaseModel):
    """POST JSON to ``url`` when an approval for the group is created, signed with HMAC-SHA256."""

    url: str
    #: Name of the env var holding the shared secret (the secret itself never sits in a file).
    secret_env: str | None = None
    timeout_s: float = 5.0
    max_attempts: int = Field(default=6, ge=1, le=20)
    #: First retry delay; doubled on each attempt (capped at ``backoff_max_s``).
    backoff_s: float = 0.5
    backoff_max_s: float = 30.0


class GroupSettings(BaseModel):
    """An approver group: how many distinct reviewers it takes, and who to notify."""

    approvals_required: int | None = Field(default=None, ge=1, le=10)
    webhook: WebhookSettings | None = None


class ToolRule(BaseModel):
    """Defaults for approvals on one tool, used when the policy item does not say."""

    approvers: str | list[str] | None = None
    mode: Mode | None = None
    ttl_s: float | None = Field(default=None, gt=0)
    hold_s: float | None = Field(default=None, gt=0, le=MAX_HOLD_S)
    approvals_required: int | None = Field(default=None, ge=1, le=10)


class ApprovalSettings(BaseModel):
    enabled: bool = True
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: ``standalone``: one Redis at ``redis_url``; ``cluster``: a Redis Cluster with ``redis_url``
    #: as its seed node (database 0). Every approvals key shares one hash tag (one slot).
    redis_mode: redisurl.RedisMode = "standalone"
    #: Connections per process (requests wait for a free one; pub/sub has its own).
    redis_max_connections: int = Field(default=64, ge=2)
    key_prefix: str = "wg"
    default_mode: Mode = "hold"
    #: How long a ``hold`` keeps the HTTP request open before the timeout outcome applies.
    hold_s: float = Field(default=120.0, gt=0, le=MAX_HOLD_S)
    #: How long an approval stays decidable; a ``defer`` re-send after that gets the expiry.
    ttl_s: float = Field(default=3600.0, gt=0)
    #: What a ``hold`` that timed out answers: ``deny`` (the approval expires, reason
    #: "approval timed out") or ``defer`` (it stays pending; the caller gets 409 approval_pending).
    timeout_outcome: Literal["deny", "defer"] = "deny"
    #: Distinct reviewers needed unless the group, tool rule or policy item says otherwise.
    approvals_required: int = Field(default=1, ge=1, le=10)
    #: Group required when the policy names none (None: any key with role ``approver``).
    default_group: str | None = None
    groups: dict[str, GroupSettings] = Field(default_factory=dict)
    tools: dict[str, ToolRule] = Field(default_factory=dict)
    #: Approvals file under ``policies_dir``, merged over the values above if it exists.
    policy_file: str = "approvals.yaml"
    #: How often the expiry sweep runs (one replica per interval holds the sweep lock).
    sweep_interval_s: float = Field(default=5.0, gt=0)
    #: Decided approvals are kept this long in the hot store (the audit store keeps them for good).
    retention_s: float = Field(default=7 * 86400.0, gt=0)
    #: A waiter re-reads the store at least this often, in case a wake-up message was lost.
    recheck_s: float = Field(default=10.0, gt=0)
    #: Env var with the Fernet key(s) sealing held answers (comma-separated: first encrypts,
    #: all decrypt, for rotation). Unset: a key generated once in ``data_dir``. Replicas
    #: sharing Redis must share the key, so set it in production.
    answer_key_env: str = "WARDGATE_APPROVALS_KEY"
    #: Base URL reviewers reach the admin API at, put into webhook payloads as a link.
    public_url: str | None = None
    webhook_queue_size: int = Field(default=10_000, ge=1)

    @field_validator("groups", "tools", mode="before")
    @classmethod
    def _none_is_empty(cls, value: object) -> object:
        return {} if value is None else value

    @model_validator(mode="after")
    def _cluster_url(self) -> ApprovalSettings:
        if self.backend == "redis":
            redisurl.check_url(self.redis_url, self.redis_mode)
        return self
