"""Settings for rate limits and budgets (see gateway/limits/).

These are the operational knobs (which store, how to fail, how to estimate). The limits
themselves (requests/min, tokens/min, USD budgets, run guards) live in ``policies/limits.yaml``
and prices in ``policies/pricing.yaml``, beside the other policy data.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from gateway import redisurl

_DAY_S = 86400.0
#: Token amounts stay far below 2^53 once summed over a window (the Lua counts in doubles).
_MAX_TOKENS = 2**31 - 1


class EstimateSettings(BaseModel):
    """How the reservation (a conservative upper bound of a call's cost) is computed."""

    #: Output tokens to reserve (and to enforce, by setting ``max_tokens`` in the forwarded body)
    #: when neither the client nor the model catalog gives a bound.
    default_output_tokens: int = Field(default=4096, ge=1, le=_MAX_TOKENS)
    #: The chat field the gateway writes when it enforces a bound. OpenAI's reasoning models
    #: (o1, o3, gpt-5 ...) refuse ``max_tokens``; older OpenAI-compatible servers only know it.
    chat_output_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    #: Upper cap for output tokens: a larger client ``max_tokens`` (or model maximum) is lowered
    #: to this in the forwarded body, so the reservation stays small. ``None``: no cap.
    max_output_tokens_cap: int | None = Field(default=None, ge=1, le=_MAX_TOKENS)
    #: Flat input-token amounts for parts whose size is not their byte count.
    image_tokens: int = Field(default=2000, ge=0, le=_MAX_TOKENS)
    audio_tokens: int = Field(default=10000, ge=0, le=_MAX_TOKENS)
    file_tokens: int = Field(default=20000, ge=0, le=_MAX_TOKENS)
    #: Per-message allowance for chat-template tokens (role markers, separators).
    message_overhead_tokens: int = Field(default=8, ge=0, le=_MAX_TOKENS)
    #: Input bound when the prompt lives upstream (``previous_response_id``, ``conversation``)
    #: and the model's context window is unknown.
    stored_context_tokens: int = Field(default=128000, ge=0, le=_MAX_TOKENS)
    #: Messages at the end of the request that make up the loop-detection fingerprint
    #: (0 = the whole request). Two catches "same tool call, same tool result" loops.
    fingerprint_messages: int = Field(default=2, ge=0, le=10_000)


class LimitsSettings(BaseModel):
    enabled: bool = True
    #: ``memory`` is the embedded default (one process); ``redis`` shares limits across replicas.
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: ``standalone``: one Redis at ``redis_url``; ``cluster``: a Redis Cluster with ``redis_url``
    #: as its seed node (database 0). Every key of one call carries the team's hash tag.
    redis_mode: redisurl.RedisMode = "standalone"
    #: Prefix of every Redis key this gateway writes (tests use one per run).
    key_prefix: str = "wg"
    #: What to do when the store cannot answer: fail closed (deny), allow, or fall back to local limits.
    on_store_error: Literal["deny", "allow", "local"] = "deny"
    #: After a store failure, how long ``local``/``allow`` mode skips Redis before probing it again.
    store_retry_s: float = Field(default=1.0, ge=0, le=_DAY_S)
    #: Redis connect/read timeout. A dead Redis is detected at once (connection refused); this
    #: bounds a *hung* one. Not lower: under a burst the event loop itself can lag by 100s of ms.
    redis_timeout_s: float = Field(default=2.0, gt=0, le=3600)
    redis_pool_size: int = Field(default=64, ge=1, le=10_000)
    #: A reservation's lease (seconds). Each worker renews the leases of its calls in flight every
    #: ``lease_s / 3``, so a call of any length keeps its hold while its worker lives; when the
    #: worker dies (or cannot reach the store for a whole lease) the lease lapses after at most
    #: this long and ``expired_reservations`` decides what happens to the amount.
    lease_s: float = Field(default=30.0, gt=0, le=_DAY_S)
    #: A lapsed lease belongs to a call whose worker died or lost the store: it may well have
    #: reached the provider and been billed. ``book`` (default) books the reserved amount as
    #: spent (a settle arriving within ``settled_ttl_s`` books only what it costs beyond that,
    #: a later one its whole cost: the mark remembering the lapse is pruned); ``release`` frees
    #: it unspent (repeated crashes can then let provider spend exceed a budget).
    expired_reservations: Literal["book", "release"] = "book"
    #: How long a settled reservation id is remembered (settle is idempotent within it). It
    #: only has to outlive the settle retries (~15 s at worst); every call leaves one such key
    #: in Redis, so a day would mean ~130M keys at 1,500 calls/s, 10 minutes ~0.9M.
    settled_ttl_s: float = Field(default=600.0, ge=30, le=_DAY_S)
    #: Idle time after which a run's counters (calls, repeats, spend) are dropped.
    run_ttl_s: float = Field(default=7 * 86400.0, gt=0, le=3650 * _DAY_S)
    #: Idle time after which an agent's counters are dropped (agent ids are caller-chosen).
    agent_ttl_s: float = Field(default=90 * 86400.0, gt=0, le=3650 * _DAY_S)
    #: Rate-limit window (the "minute" of requests/min and tokens/min).
    window_s: float = Field(default=60.0, ge=0.001, le=_DAY_S)
    #: A model with no known price: ``deny`` (403 model_price_unknown) or treat it as ``free``.
    unknown_price: Literal["deny", "free"] = "deny"
    #: File names inside ``Settings.policies_dir``.
    limits_file: str = "limits.yaml"
    pricing_file: str = "pricing.yaml"
    estimate: EstimateSettings = Field(default_factory=EstimateSettings)

    @field_validator("key_prefix")
    @classmethod
    def _no_hash_tag_in_prefix(cls, v: str) -> str:
        # The prefix precedes the {team} hash tag; a brace in it would become the tag instead.
        if "{" in v or "}" in v or not v:
            raise ValueError("key_prefix must be non-empty and contain no '{' or '}'")
        return v

    @model_validator(mode="after")
    def _cluster_url(self) -> LimitsSettings:
        if self.backend == "redis":
            redisurl.check_url(self.redis_url, self.redis_mode)
        return self
