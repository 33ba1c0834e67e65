"""Rate limits, USD budgets and run guards that no concurrency can overspend (docs/architecture.md).

    component.py  setup(ctx): store, prices, rules, stages, readiness, ctx.services["limits"]
    stage.py      LimitStage ("limit": reserve), RepriceStage ("limit_reprice": the policy routed
                  the call to another model) and SettleStage ("settle": book the real cost)
    service.py    estimate → reserve → [reprice] → settle, and on_store_error (deny | allow | local)
    leases.py     LeaseKeeper: renews the leases of the worker's calls in flight every lease_s/3
    estimate.py   the cost bound before a call (no network) and the loop fingerprint
    pricing.py    genai-prices (offline) + policies/pricing.yaml
    rules.py      policies/limits.yaml (+ keys.yaml limits/budgets): the scopes of a call
    store.py      the LimitStore interface, value types and the Redis key layout
    engine.py     the sliding-window log and override rules both stores share
    memory.py     MemoryStore (embedded default, one process); sortedlog.py its sorted sets
    redis_store.py, lua.py   RedisStore: one Lua script (one round trip) per operation
    wire.py, resp.py         the hot-path commands pre-encoded (RESP), and the lean client
    admin.py, api.py, cli.py spend, runtime budgets/limits, burn-rate forecast; `wardgate spend`

Kept import-free: ``gateway.settings`` imports ``gateway.limits.config`` at startup.
"""
