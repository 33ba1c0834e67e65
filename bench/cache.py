"""Response cache: an exact hit vs the pass-through path, one gateway worker.

    .venv/bin/python bench/cache.py [--seconds 10] [--redis redis://127.0.0.1:6379/0]

The fake upstream answers after 200 ms (a model's think time). Three gateways (one worker
each, pinned to core 0, every guard off): the cache off (the pass-through path), the cache
on with the memory store, the cache on with the Redis store (``default_mode: exact``, as a
policy would decide for ``temperature: 0``). For each:

- c=1: p50 of a pass-through call (minus the upstream's 200 ms: the gateway's own time), of
  a hit, and of a miss that stores (``Cache-Control: no-cache``: not looked up, stored);
- c=32: hit throughput (RPS per worker), and the CPU per request of the gateway process at
  c=32 for hits, pass-through calls and stored misses (user+system from /proc per request
  served, the gateway's idle CPU over the run taken out): a number a loaded machine does
  not inflate the way it inflates wall-clock latency.

``--callgrind N``: instead, instructions per request of the gateway process under callgrind
(N sequential requests per case after 30 warm-up ones, the idle cost over the same time
subtracted): pass-through, memory hit, memory miss that stores, Redis hit (``--cases``).

``--semantic``: semantic mode instead (bench/cache_semantic.py): recall on the labelled set,
the lookup's p50 including the embedding, the index against brute force, paraphrase hits
through one worker.

Targets (issue 23): a hit's p50 <= the pass-through path's own time + 0.5 ms; hits >= 3,000
RPS/worker (memory), >= 2,000 (Redis); a semantic lookup's p50 <= 10 ms with the embedding.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx

from bench.common import BENCH_KEY, CHAT_BODY, WrkResult, cpu_seconds, fake_upstream, gateway, wrk

LATENCY_MS = 200.0
BODY = {**CHAT_BODY, "temperature": 0}


def _idle_rate(gw: Any, seconds: float = 3.0) -> float:
    """CPU seconds per second the gateway spends with no request (timers, sweeps), so it can
    be taken out of the CPU per request."""
    cpu0, t0 = cpu_seconds(gw.pid), time.monotonic()
    time.sleep(seconds)
    return (cpu_seconds(gw.pid) - cpu0) / (time.monotonic() - t0)


def _run(
    gw: Any, conns: int, seconds: int, idle: float = 0.0, headers: dict[str, str] | None = None
) -> tuple[WrkResult, float]:
    """wrk's result and the gateway's CPU µs per request (its idle CPU over the run taken out)."""
    cpu0, t0 = cpu_seconds(gw.pid), time.monotonic()
    res = wrk(gw.url + "/chat/completions", BODY, conns, seconds, headers=headers)
    busy = cpu_seconds(gw.pid) - cpu0 - idle * (time.monotonic() - t0)
    return res, max(busy, 0.0) / max(res.requests, 1) * 1e6


def _instructions(out_dir: Path, pid: int, before: set[Path]) -> tuple[int, set[Path]]:
    """Dump the callgrind counters of ``pid``; the instructions since the last zeroing."""
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    for _ in range(600):
        files = set(out_dir.glob("cg.*"))
        new = [f for f in files - before if f.stat().st_size > 0]
        if new:
            time.sleep(0.5)  # let the dump finish writing
            text = new[0].read_text(errors="replace")
            m = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
            if m:
                return int(m.group(1)), files
        time.sleep(0.1)
    raise TimeoutError("callgrind wrote no dump")


def _callgrind(upstream: str, config: dict[str, Any], n: int, headers: dict[str, str] | None = None) -> float:
    """Instructions per request of the gateway process (callgrind), ``n`` sequential requests
    after a warm-up, the idle cost over the same time taken out: a count a loaded machine
    does not change."""
    out_dir = Path(tempfile.mkdtemp(prefix="wg-cg-"))
    wrap = [
        "valgrind",
        "--tool=callgrind",
        f"--callgrind-out-file={out_dir}/cg.%p",
        "--instr-atstart=no",  # start uninstrumented (minutes faster); switched on after warm-up
    ]
    with gateway(upstream, config, wrap=wrap) as gw, httpx.Client(timeout=120) as client:
        url = gw.url + "/chat/completions"
        auth = {"authorization": f"Bearer {BENCH_KEY}", **(headers or {})}
        for _ in range(30):
            client.post(url, json=BODY, headers=auth).raise_for_status()
        subprocess.run(["callgrind_control", "-i", "on", str(gw.pid)], check=True, capture_output=True)
        for _ in range(10):
            client.post(url, json=BODY, headers=auth).raise_for_status()
        seen: set[Path] = set()
        subprocess.run(["callgrind_control", "-z", str(gw.pid)], check=True, capture_output=True)
        t0 = time.monotonic()
        time.sleep(5)
        idle_instr, seen = _instructions(out_dir, gw.pid, seen)
        idle_rate = idle_instr / (time.monotonic() - t0)
        subprocess.run(["callgrind_control", "-z", str(gw.pid)], check=True, capture_output=True)
        t0 = time.monotonic()
        for _ in range(n):
            client.post(url, json=BODY, headers=auth).raise_for_status()
        busy, seen = _instructions(out_dir, gw.pid, seen)
        elapsed = time.monotonic() - t0
    shutil.rmtree(out_dir, ignore_errors=True)
    return (busy - idle_rate * elapsed) / n


def callgrind_main(n: int, cases: list[str], redis_url: str) -> None:
    mem = {"cache": {"enabled": True, "default_mode": "exact"}}
    prefix = f"wgbench:{uuid.uuid4().hex[:8]}:cache"
    red = {"cache": {**mem["cache"], "store": "redis", "redis_url": redis_url, "redis_prefix": prefix}}
    table: dict[str, tuple[str, dict[str, Any], dict[str, str] | None]] = {
        "passthrough": ("pass-through (cache off)", {}, None),
        "memory": ("memory hit", mem, None),
        "store": ("memory miss+store (no-cache)", mem, {"Cache-Control": "no-cache"}),
        "redis": ("redis hit", red, None),
    }
    with fake_upstream(latency_ms=LATENCY_MS) as upstream:
        for case in cases:
            label, config, headers = table[case]
            count = _callgrind(upstream, config, n, headers=headers)
            print(f"callgrind {label:34s} {count / 1000:8.1f}k instructions/request")
            sys.stdout.flush()
    if "redis" in cases:
        _forget(redis_url, prefix)


def _forget(redis_url: str, prefix: str) -> None:
    """Delete what the Redis store wrote under this run's prefix."""
    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=prefix + ":*"))
    if keys:
        client.delete(*keys)
    client.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument(
        "--callgrind", type=int, default=0, help="N requests per case under callgrind instead"
    )
    parser.add_argument("--cases", default="passthrough,memory,store,redis", help="callgrind cases")
    parser.add_argument(
        "--semantic", action="store_true", help="semantic mode instead (bench/cache_semantic.py)"
    )
    parser.add_argument("--samples", type=int, default=200, help="semantic lookups per case")
    args = parser.parse_args()
    if args.semantic:
        from bench.cache_semantic import main as semantic_main

        semantic_main(args.samples)
        return
    if args.callgrind:
        callgrind_main(args.callgrind, args.cases.split(","), args.redis)
        return
    s = args.seconds
    prefix = f"wgbench:{uuid.uuid4().hex[:8]}:cache"
    configs = {
        "memory": {"cache": {"enabled": True, "default_mode": "exact"}},
        "redis": {
            "cache": {
                "enabled": True,
                "default_mode": "exact",
                "store": "redis",
                "redis_url": args.redis,
                "redis_prefix": prefix,
            }
        },
    }
    with fake_upstream(latency_ms=LATENCY_MS) as upstream:
        with gateway(upstream, {}) as plain:
            wrk(plain.url + "/chat/completions", BODY, 8, 2)  # warm-up
            direct, _ = _run(type("D", (), {"url": upstream, "pid": plain.pid})(), 1, s)
            idle = _idle_rate(plain)
            passthrough, _ = _run(plain, 1, s, idle)
            pass32, pass_cpu = _run(plain, 32, s, idle)
        own = passthrough.p50_ms - direct.p50_ms
        print(f"direct         c=1  {direct.row()}")
        print(f"pass-through   c=1  {passthrough.row()}  own time p50 {own:.3f} ms")
        print(f"pass-through   c=32 {pass32.row()}  cpu {pass_cpu:6.0f} µs/req")
        for name, config in configs.items():
            with gateway(upstream, config) as gw:
                wrk(gw.url + "/chat/completions", BODY, 8, 2)  # stores the answer, warms the hit path
                idle = _idle_rate(gw)
                hit1, _ = _run(gw, 1, s, idle)
                hit32, hit_cpu = _run(gw, 32, s, idle)
                store32, store_cpu = _run(gw, 32, s, idle, headers={"Cache-Control": "no-cache"})
            print(f"{name:6s} hit   c=1  {hit1.row()}")
            print(f"{name:6s} hit   c=32 {hit32.row()}  cpu {hit_cpu:6.0f} µs/req")
            print(
                f"{name:6s} store c=32 {store32.row()}  cpu {store_cpu:6.0f} µs/req (no-cache: forwarded, stored)"
            )
            target = 3000 if name == "memory" else 2000
            print(
                f"{name:6s} hit p50 {hit1.p50_ms:.3f} ms vs pass-through own {own:.3f} ms: "
                f"added {hit1.p50_ms - own:+.3f} ms (target <= +0.5); "
                f"{hit32.rps:.0f} RPS (target >= {target}); "
                f"cpu hit {hit_cpu:.0f} vs pass-through {pass_cpu:.0f} µs/req"
            )
            sys.stdout.flush()
    _forget(args.redis, prefix)


if __name__ == "__main__":
    main()
