"""The seam semantic mode plugs into; semantic mode itself is not built yet.

A request policy may decide ``cache: {mode: semantic, threshold}``: a hit on a *similar*
question, not only an identical one (issue 23: an embedding of the normalised last user turn
plus a hash of the rest of the context; a hit needs cosine similarity above the threshold and
an identical context hash). The stage consults a ``SemanticIndex`` for it: given the call,
the index answers the key of a stored entry close enough (or None), and is told of every
entry stored so it can index it.

Until an index exists (``CacheStage(semantic=None)``, the only configuration today), a
``semantic`` decision is served as ``exact``: an exact hit is also a semantic hit at any
threshold (same text, same context), so this only ever serves fewer hits than asked for,
never a looser one. Each such call is counted (``wardgate_cache_semantic_unavailable_total``)
and audited with ``mode: exact`` and ``reason: semantic_unavailable``.
"""

from __future__ import annotations

from typing import Protocol

from gateway.cache.key import CacheKey
from gateway.call import Call


class SemanticIndex(Protocol):
    async def nearest(self, call: Call, exact: CacheKey, threshold: float) -> CacheKey | None:
        """The key of a stored entry whose last user turn is at least ``threshold`` similar
        to ``call``'s, with the same scope, model and context hash; None when there is none."""
        ...

    async def added(self, call: Call, key: CacheKey) -> None:
        """``call``'s answer was stored under ``key``: index it (and announce it to replicas)."""
        ...
