"""The ``cache:`` settings section: the response cache's store, bounds and defaults.

Off by default: a cache changes what a gateway answers (a stored answer instead of a fresh
one), so a deployment turns it on knowingly. Which calls are cached is the request policy's
decision (``cache: {mode, ttl_s, scope}``, rego/request.rego); ``default_mode`` only applies
to calls no policy decided on (policy disabled, or a policy without ``cache``).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class CacheSettings(BaseModel):
    enabled: bool = False
    #: ``memory``: per process, a bounded LRU (embedded default); ``redis``: shared by replicas.
    store: Literal["memory", "redis"] = "memory"
    #: What the memory store holds at most (stored bytes, keys included); least recently used
    #: entries go first.
    max_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    #: A larger answer is not stored (it would crowd out many small ones and cost a large copy
    #: per hit).
    max_entry_bytes: int = Field(default=1024 * 1024, ge=256)
    #: Lifetime when the decision gives none, and the most any decision may ask for.
    default_ttl_s: float = Field(default=3600.0, gt=0)
    max_ttl_s: float = Field(default=86400.0, gt=0)
    #: For calls without a policy decision on caching: ``off`` (default), ``exact`` or
    #: ``semantic`` (with ``semantic_threshold``).
    default_mode: Literal["off", "exact", "semantic"] = "off"
    #: The scope used with ``default_mode``.
    default_scope: Literal["team", "key", "global"] = "team"
    redis_url: str = "redis://127.0.0.1:6379/0"
    #: Key prefix in Redis (entries are ``<prefix>:{<scope>}:<model>:<hash>``).
    redis_prefix: str = "wardgate:cache"
    #: A Redis command slower than this is a miss (the call goes on to the provider).
    redis_timeout_s: float = Field(default=0.25, gt=0)
    #: Values at least this long are zlib-compressed in Redis.
    compress_min_bytes: int = Field(default=512, ge=0)
    #: Semantic mode (a policy's ``cache: {mode: semantic}``, docs/architecture.md §10).
    #: False: such calls are served as exact. The model loads on the first semantic call
    #: (~0.7 s of CPU, ~150 MB per worker process with int8), or at start with
    #: ``semantic_preload``.
    semantic_enabled: bool = True
    semantic_preload: bool = False
    #: The least cosine similarity of a hit when the decision gives no ``threshold``
    #: (measured on tests/cache/paraphrases.py: no near-duplicate of another intent above it).
    semantic_threshold: float = Field(default=0.95, gt=0.0, le=1.0)
    #: Vectors held per worker process (~1.6 KB each); the oldest go first.
    semantic_max_entries: int = Field(default=20000, ge=1)
    #: A context with this many vectors gets an HNSW index (usearch); fewer: brute force
    #: (measured, bench/cache.py --semantic: the numpy product is cheaper below ~8k vectors).
    semantic_ann_min: int = Field(default=8192, ge=1)
    #: Longer last turns (model tokens) are served exact-only.
    semantic_max_tokens: int = Field(default=128, ge=8, le=512)
    #: The model's products in int8 (~0.6x the CPU of float32; vectors within ~0.997 cosine,
    #: the labelled set's table unchanged at the default threshold: docs/architecture.md §10).
    #: False: float32, the reference's vectors.
    semantic_int8: bool = True
