"""Rate limits, USD budgets and run guards that no concurrency can overspend (docs/architecture.md).

    component.py  Limits: the component (store, prices, rules, stages, readiness, routes, CLI)
    config.py     LimitsSettings: the ``limits`` section
    stage.py      LimitStage ("limit": reserve), RepriceStage ("limit_reprice": the policy routed
                  the call to another model) and SettleStage ("settle": book the real cost)
    service.py    estimate → reserve → [reprice] → settle: the call's decisions, state, headers
    quote.py      a call's token and cost bounds per model (prices, context window, cached)
    store_access.py  every store call; on_store_error (deny | allow | local), settle retries
    leases.py     LeaseKeeper: renews the leases of the worker's calls in flight every lease_s/3
    estimate.py   the cost bound before a call (no network) and the loop fingerprint
    booking.py    what a finished call is booked at (its usage, or the reservation)
    bounds.py     the documented range of every limit and budget number, checked in one place
    windows.py    budget windows (UTC day, month, total) as integer ids, as in the Lua
    headers.py    what the client sees: x-ratelimit-* headers and the 429 errors
    metrics.py    Prometheus metrics on the app's registry
    pricing.py    genai-prices (offline) + policies/pricing.yaml
    rules.py      policies/limits.yaml (+ keys.yaml limits/budgets): the scopes of a call
    store.py      the LimitStore interface, value types and the Redis key layout
    engine.py     the sliding-window log and override rules both stores share
    memory.py     MemoryStore (embedded default, one process); sortedlog.py its sorted sets
    memory_model.py, memory_admin.py   its data model (one scope) and its admin operations
    redis_store.py, lua.py   RedisStore: one Lua script (one round trip) per operation
    lua_common.py, lua_leases.py, lua_admin.py   the scripts' shared helpers, lease and re-price
                             scripts, admin-API scripts
    wire.py, resp.py         the hot-path commands pre-encoded (RESP), and the lean client
    resp_cluster.py          the lean client on a Redis Cluster (routed by the team's hash tag)
    admin.py, api.py, cli.py spend, runtime budgets/limits, burn-rate forecast; `wardgate spend`

Kept import-free: ``gateway.settings`` imports ``gateway.limits.component`` (which imports only
``config.py`` at module level) at startup and in the CLI.
"""
