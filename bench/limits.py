"""Limits and budgets: store round trips and latency, the stages' cost, the gateway's added latency.

    .venv/bin/python bench/limits.py [--n 5000] [--redis-url redis://127.0.0.1:6379/0]
                                     [--gateway] [--seconds 10]

- ``round trips``: Redis commands sent per call by ``reserve`` (before forwarding) and by
  ``settle`` (after the answer), counted on the store's client. Target: 1 and 1.
- ``store``: one ``reserve`` + ``settle`` on a call counted in 5 scopes (key, team, agent,
  run, model) with rate limits, budgets and run guards, p50/p99 per operation at c=1 and ops/s
  at c=32, memory and Redis.
- ``stages``: ``LimitStage.on_request`` + ``SettleStage.on_finish`` on a realistic ``Call``
  (estimate, prices, scopes, headers, metrics, the store): what limits add to one call.
- ``--gateway``: wrk through one gateway worker (``bench.common.gateway``: uvloop, pinned to
  core 0) with limits off, on (memory) and on (Redis), c=1 and c=32, against the fast fake
  upstream; every other guard off. Targets: added
  p50 <= 0.4 ms; >= 1,500 RPS with limits+budgets on.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "limits"))

import yaml  # noqa: E402
from limits_helpers import catalog, forwarded, make_service  # noqa: E402

from bench.common import (  # noqa: E402
    CHAT_BODY,
    cpu_seconds,
    fake_upstream,
    wrk,
)
from bench.common import gateway as gateway_process  # noqa: E402
from gateway.call import Call, Endpoint, Principal, Usage  # noqa: E402
from gateway.limits.memory import MemoryStore  # noqa: E402
from gateway.limits.redis_store import RedisStore  # noqa: E402
from gateway.limits.stage import LimitStage, SettleStage  # noqa: E402
from gateway.limits.store import LimitStore, Reservation, ReserveRequest, ScopeSpec, usd_to_nano  # noqa: E402
from gateway.pipeline import Pipeline  # noqa: E402

BIG = 10**9  # limits high enough never to deny during a benchmark
LIMITS = {
    "scopes": {
        "key": {
            "requests_per_minute": BIG,
            "tokens_per_minute": BIG,
            "max_concurrent_requests": BIG,
            "budget_usd": {"day": 1e5, "month": 1e6},
        },
        "team": {"requests_per_minute": BIG, "budget_usd": {"month": 1e6}},
        "agent": {"requests_per_minute": BIG},
        "run": {"requests_per_minute": BIG, "budget_usd": {"total": 1e6}},
        "model": {"tokens_per_minute": BIG},
    },
    "run_guards": {"max_calls": BIG, "max_identical_requests": BIG},
}


def _pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(len(s) * p))] * 1e3


def _scopes(i: int) -> tuple[ScopeSpec, ...]:
    b = (usd_to_nano(1e5), usd_to_nano(1e6), None)
    return (
        ScopeSpec("key", "bench", BIG, BIG, b),
        ScopeSpec("team", "bench", BIG, None, (None, b[1], None)),
        ScopeSpec("agent", "agent-1", BIG),
        ScopeSpec("run", f"run-{i % 50}", BIG, None, (None, None, b[1])),
        ScopeSpec("model", "mock-chat", None, BIG),
    )


async def _store_ops(store: LimitStore, n: int, conc: int) -> dict[str, Any]:
    reserve_t: list[float] = []
    settle_t: list[float] = []

    async def worker(w: int) -> None:
        for i in range(w, n, conc):
            scopes = _scopes(i)
            req = ReserveRequest(
                "bench",
                uuid.uuid4().hex,
                scopes,
                2_000_000,
                500,
                run_index=3,
                team_index=1,
                max_calls=BIG,
                max_identical=BIG,
                fingerprint=f"fp{i % 7}",
            )
            t0 = time.perf_counter()
            r = await store.reserve(req)
            t1 = time.perf_counter()
            res = Reservation(
                "bench", req.rid, scopes, r.flags, req.est_nano, req.est_tokens, r.now_ms, store.name
            )
            await store.settle(res, 1_000_000, 300)
            t2 = time.perf_counter()
            reserve_t.append(t1 - t0)
            settle_t.append(t2 - t1)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(conc)))
    wall = time.perf_counter() - t0
    return {
        "reserve_p50": _pct(reserve_t, 0.5),
        "reserve_p99": _pct(reserve_t, 0.99),
        "settle_p50": _pct(settle_t, 0.5),
        "settle_p99": _pct(settle_t, 0.99),
        "calls_s": n / wall,
    }


def _call(i: int) -> Call:
    return Call(
        request_id=uuid.uuid4().hex,
        endpoint=Endpoint.CHAT,
        body=dict(CHAT_BODY, model="mock-chat"),
        headers={},
        model="mock-chat",
        principal=Principal(key_id="bench", team="bench", user="bench"),
        agent_id="agent-1",
        run_id=f"run-{i % 50}",
    )


async def _stages(store: LimitStore, n: int) -> dict[str, float]:
    service = make_service(store, LIMITS, models=catalog("mock-chat"))
    limit, finish = LimitStage(service), Pipeline([SettleStage(service)])
    times: list[float] = []
    cpu0 = time.process_time()
    for i in range(n):
        call = _call(i)
        t0 = time.perf_counter()
        await limit.on_request(call)
        await finish.finish(forwarded(call, Usage(40, 20)))
        await finish.after_answer(call)  # the settle's reply (the answer would be out by now)
        times.append(time.perf_counter() - t0)
    cpu = (time.process_time() - cpu0) / n * 1e6
    return {"p50": _pct(times, 0.5), "p99": _pct(times, 0.99), "cpu_us": cpu}


async def _round_trips(redis_url: str) -> tuple[float, float]:
    store = RedisStore(redis_url, prefix=f"wgbench:{uuid.uuid4().hex[:8]}")
    await store.start()
    service = make_service(store, LIMITS, models=catalog("mock-chat"))
    limit, finish = LimitStage(service), Pipeline([SettleStage(service)])
    before = after = 0
    n = 200
    try:
        for i in range(n):
            call = _call(i)
            rt0 = store.round_trips
            await limit.on_request(call)
            rt1 = store.round_trips
            await finish.finish(forwarded(call, Usage(40, 20)))
            await finish.after_answer(call)
            before += rt1 - rt0
            after += store.round_trips - rt1
    finally:
        await store.delete_prefix()
        await store.close()
    return before / n, after / n


async def _with_store(kind: str, redis_url: str, fn: Callable[[LimitStore], Awaitable[Any]]) -> Any:
    if kind == "memory":
        return await fn(MemoryStore())
    store = RedisStore(redis_url, prefix=f"wgbench:{uuid.uuid4().hex[:8]}", pool_size=64)
    await store.start()
    try:
        return await fn(store)
    finally:
        await store.delete_prefix()
        await store.close()


async def _ping_floor(redis_url: str, n: int = 2000) -> float:
    """p50 of a Redis PING on the same client: the round-trip floor of this machine right now."""
    store = RedisStore(redis_url, prefix="wgbench:ping")
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            await store.ping()
            times.append(time.perf_counter() - t0)
    finally:
        await store.close()
    return _pct(times, 0.5)


async def in_process(args: argparse.Namespace) -> None:
    print(
        f"noise floor: Redis PING p50 {await _ping_floor(args.redis_url):.3f} ms (an idle machine: ~0.05 ms)"
    )
    before, after = await _round_trips(args.redis_url)
    print(f"round trips per call (Redis): before forwarding {before:.2f}, after the answer {after:.2f}")
    for kind in ("memory", "redis"):
        for conc in (1, 32):
            r = await _with_store(kind, args.redis_url, lambda s, c=conc: _store_ops(s, args.n, c))
            print(
                f"store  {kind:6s} c={conc:<3d} reserve p50 {r['reserve_p50']:.3f} ms p99 {r['reserve_p99']:.3f} ms"
                f"  settle p50 {r['settle_p50']:.3f} ms p99 {r['settle_p99']:.3f} ms  {r['calls_s']:8.0f} calls/s"
            )
        r = await _with_store(kind, args.redis_url, lambda s: _stages(s, args.n))
        print(
            f"stages {kind:6s} c=1   limit+settle p50 {r['p50']:.3f} ms p99 {r['p99']:.3f} ms"
            f"  cpu {r['cpu_us']:.0f} µs/call"
        )
        sys.stdout.flush()


def _extra_files() -> dict[str, Any]:
    pricing = yaml.safe_load((REPO / "policies" / "pricing.yaml").read_text())
    pricing["models"]["bench-model"] = {
        "input_per_mtok": 2.5,
        "output_per_mtok": 10,
        "context_window": 128000,
    }
    return {"limits.yaml": LIMITS, "pricing.yaml": pricing}


def through_gateway(args: argparse.Namespace) -> None:
    prefix = f"wgbench:{uuid.uuid4().hex[:8]}"
    variants = {
        "off": {"enabled": False},
        "memory": {"enabled": True, "backend": "memory"},
        "redis": {"enabled": True, "backend": "redis", "redis_url": args.redis_url, "key_prefix": prefix},
    }
    body = dict(CHAT_BODY)
    results: dict[tuple[str, int], Any] = {}
    try:
        with fake_upstream() as upstream:
            for name, limits in variants.items():
                with gateway_process(upstream, {"limits": limits}, extra_files=_extra_files()) as gw:
                    wrk(gw.url + "/chat/completions", body, 8, 2)  # warm-up
                    for conns in (1, 32):
                        cpu0 = cpu_seconds(gw.pid)
                        r = wrk(gw.url + "/chat/completions", body, conns, args.seconds)
                        cpu = (cpu_seconds(gw.pid) - cpu0) / max(r.requests, 1) * 1e6
                        results[(name, conns)] = r
                        print(f"gateway limits={name:6s} c={conns:<3d} {r.row()}  cpu {cpu:5.0f} µs/req")
                        sys.stdout.flush()
    finally:
        asyncio.run(_cleanup(args.redis_url, prefix))
    for name in ("memory", "redis"):
        for conns in (1, 32):
            on, off = results[(name, conns)], results[("off", conns)]
            print(
                f"added by limits ({name:6s}) c={conns:<3d} p50 {on.p50_ms - off.p50_ms:+.3f} ms  "
                f"p99 {on.p99_ms - off.p99_ms:+.3f} ms  rps {on.rps:7.0f} vs {off.rps:7.0f}"
            )


async def _cleanup(redis_url: str, prefix: str) -> None:
    store = RedisStore(redis_url, prefix=prefix)
    await store.delete_prefix()
    await store.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--gateway", action="store_true", help="also measure through a gateway with wrk")
    parser.add_argument("--seconds", type=int, default=10)
    args = parser.parse_args()
    asyncio.run(in_process(args))
    if args.gateway:
        through_gateway(args)


if __name__ == "__main__":
    main()
