"""``SemanticCache``: the semantic index the cache stage consults (``semantic.SemanticIndex``).

Per worker process: the model (``embedder``, loaded once, on the first semantic call or at
start with ``semantic_preload``), the vectors (``vectors.VectorIndex``) and, with the Redis
store, the shared feed (``semantic_feed``) that fills the index with what every replica
stores. Until the model is loaded a semantic call is served as exact (``ready``).

The embedding runs on one thread of its own (ONNX Runtime and numpy release the GIL while
they compute): the event loop keeps serving other calls meanwhile, and embeddings queue rather
than compete for the core. The vectors of recent turns are memoised (a turn asked again in
another context is embedded once), keyed by a hash of the turn: the memo keeps no text.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from redis.exceptions import RedisError

from gateway.cache.config import CacheSettings
from gateway.cache.embedder import Embedder, EmbedderUnavailable, Engine, Vector
from gateway.cache.key import CacheKey
from gateway.cache.semantic import Near, Query, query
from gateway.cache.semantic_feed import RedisFeed
from gateway.cache.vectors import Indexed, VectorIndex
from gateway.call import Call
from gateway.callstate import Slot

log = logging.getLogger("wardgate.cache")

_MEMO = 2048
#: A lookup's query and vector, kept for indexing the answer if it is stored.
_LOOKED_UP: Slot[tuple[Query | None, Vector | None]] = Slot("cache.semantic")


class SemanticCache:
    def __init__(
        self, settings: CacheSettings, feed: RedisFeed | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.index = VectorIndex(settings.semantic_max_entries, settings.semantic_ann_min, clock)
        self.feed = feed
        self._clock = clock
        self._embedder: Embedder | None = None
        self._loading: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="wardgate-embed")
        self._memo: OrderedDict[bytes, Vector | None] = OrderedDict()
        #: Why the model could not be loaded (semantic calls stay exact).
        self.error: str | None = None

    # -- the model ---------------------------------------------------------------------------

    def ready(self) -> bool:
        if self._embedder is not None:
            return True
        if self._loading is None and self.error is None:
            self._loading = asyncio.create_task(self.load(), name="cache-semantic-load")
        return False

    async def load(self) -> None:
        """Load the model off the event loop, then start the shared feed."""
        if self._embedder is not None:
            return
        loop = asyncio.get_running_loop()
        try:
            engine: Engine = "onnx-int8" if self.settings.semantic_int8 else "onnx"
            load = functools.partial(Embedder, self.settings.semantic_max_tokens, engine=engine)
            self._embedder = await loop.run_in_executor(self._executor, load)
        except EmbedderUnavailable as exc:
            self.error = str(exc)
            log.error("semantic cache unavailable, semantic calls are served as exact: %s", exc)
            return
        if self.feed is not None:
            self.feed.start(self._announced, self.index.purge)

    async def embed(self, text: str) -> Vector | None:
        """The vector of a normalised turn (None: too long for the model)."""
        memo, key = self._memo, hashlib.blake2b(text.encode(), digest_size=16).digest()
        if key in memo:
            memo.move_to_end(key)
            return memo[key]
        embedder = self._embedder
        if embedder is None:
            return None
        vector = await asyncio.get_running_loop().run_in_executor(self._executor, embedder.embed, text)
        memo[key] = vector
        if len(memo) > _MEMO:
            memo.popitem(last=False)
        return vector

    # -- lookups and stores ------------------------------------------------------------------

    async def nearest(self, call: Call, exact: CacheKey, threshold: float) -> Near | None:
        q = query(call, exact)
        vector = await self.embed(q.text) if q is not None else None
        _LOOKED_UP.put(call, (q, vector))
        if q is None or vector is None:
            return None
        for candidate in self.index.search(q.context, vector, threshold):
            entry = candidate.entry
            if entry.key.scope != exact.scope or entry.key.model != exact.model:
                continue  # cannot happen (both are in the context hash); never trusted
            if entry.bag == q.bag_hash and entry.text != q.text_hash:
                continue  # the same words in another order: maybe swapped roles
            return Near(entry.key, candidate.similarity)
        return None

    async def added(self, call: Call, key: CacheKey, ttl_s: float) -> None:
        looked_up = _LOOKED_UP.get(call)
        _LOOKED_UP.clear(call)
        if looked_up is None:  # stored without a lookup (Cache-Control: no-cache)
            q = query(call, key)
            looked_up = (q, await self.embed(q.text) if q is not None else None)
        q, vector = looked_up
        if q is None or vector is None:
            return
        entry = Indexed(key, q.context, q.text_hash, q.bag_hash, self._clock() + ttl_s)
        self.index.add(vector, entry)  # this worker hits at once, before the announcement
        if self.feed is not None:
            try:
                await self.feed.publish(entry, vector, ttl_s)
            except (RedisError, OSError) as exc:
                log.warning("semantic cache: could not announce a stored entry (%s)", type(exc).__name__)

    def _announced(self, entry: Indexed, vector: Vector) -> None:
        if entry.key.id not in self.index and entry.expires > self._clock():
            self.index.add(vector, entry)

    async def purged(self, scope: str | None, model: str | None) -> None:
        self.index.purge(scope, model)
        if self.feed is not None:
            await self.feed.purged(scope, model)

    def stats(self) -> dict[str, object]:
        return {
            "model": self._embedder.model if self._embedder is not None else None,
            "engine": self._embedder.engine if self._embedder is not None else None,
            "loaded": self._embedder is not None,
            "error": self.error,
            "feed": None if self.feed is None else (self.feed.error or "subscribed"),
            **self.index.stats(),
        }

    async def close(self) -> None:
        if self._loading is not None and not self._loading.done():
            self._loading.cancel()
        if self.feed is not None:
            await self.feed.close()
        self._executor.shutdown(wait=False, cancel_futures=True)
