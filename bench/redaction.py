"""Redaction cost per call, and the gateway's throughput with redaction on and off.

    .venv/bin/python bench/redaction.py [--iterations 300] [--seconds 10] [--no-rps] [--json]

Per call, through ``RedactInStage`` on real ``Call``s (every measured message is new, so it is
analysed, never a cache hit):
  a) a 200 B prompt;
  b) a 2 KB new message on top of a 40 KB conversation already seen (agents resend the whole
     conversation every call: the 40 KB come from the analysis cache);
  c) a 20 KB new message.
Two kinds of agent text (``agent_text``): ``dense`` is prose, Python, log lines with
timestamps, hex ids and an IP each, JSON tool results, and an e-mail/phone/card every ~1 KB:
digits everywhere, so the pre-filter has real work; on it plain Presidio costs what the issue
measured (~15 ms per 2 KB, ~110-140 ms per 20 KB). ``chat`` is prose, code and JSON tool
results with an entity every ~2 KB. Reported: wall time and process CPU time (the cost; stable
when the box is busy), with the pre-filter and without it (plain Presidio on whole texts).

Throughput: a gateway process (one worker, pinned to core 0; fake upstream and wrk on core 1)
at c=32, redaction off vs on, with a prompt carrying an e-mail and a card; and the worker's RSS
with Presidio loaded. Targets: b <= 1 ms p50, c <= 15 ms p50, RSS <= 200 MB per worker.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.call import Call, Endpoint
from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings
from gateway.redaction.stage import RedactInStage

PROSE = [
    "I looked at the failing test and the problem is that the fixture is created once per session.",
    "Could you refactor the retry logic so that it backs off exponentially and gives up after five attempts?",
    "The deployment to staging finished without errors, but the health check took longer than usual.",
    "Here is the summary of the incident: the cache was cold after the restart and latency went up for ten minutes.",
    "Please keep the public API unchanged; only the internals of the parser should move to the new module.",
    "The customer asked whether the export can include archived projects as well as active ones.",
    "We should add a metric for queue depth and alert when it stays above the threshold for five minutes.",
    "The migration adds a nullable column first, backfills it in batches, then adds the constraint.",
]
CODE = [
    "def retry(fn, attempts=5, base=0.2):\n    for i in range(attempts):\n        try:\n            return fn()\n"
    "        except TimeoutError:\n            time.sleep(base * 2 ** i)\n    raise RuntimeError('gave up')",
    "for row in rows[:100]:\n    total += row['amount'] * 1.2\nprint(f'{total:.2f}')",
    "SELECT id, created_at, status FROM orders WHERE created_at > '2024-03-01' ORDER BY id DESC LIMIT 50;",
]
Messages = list[dict[str, Any]]


def log_line(rng: random.Random) -> str:
    return (
        f"2024-03-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:"
        f"{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z INFO request_id={rng.getrandbits(64):016x} "
        f"path=/api/v1/items/{rng.randint(1, 99999)} status=200 latency_ms={rng.randint(1, 900)} "
        f"client=10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    )


def tool_result(rng: random.Random) -> str:
    return json.dumps(
        {
            "id": rng.randint(10000, 999999),
            "status": rng.choice(["open", "closed", "pending"]),
            "created_at": f"2024-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}T10:2{rng.randint(0, 9)}:00Z",
            "amount": round(rng.uniform(1, 5000), 2),
            "items": rng.randint(1, 40),
            "sku": f"SKU-{rng.randint(1000, 9999)}",
        }
    )


def entity(rng: random.Random) -> str:
    return rng.choice(
        [
            f"contact {rng.choice(['ana', 'li', 'sam', 'kim'])}.{rng.randint(1, 999)}@example.com about it",
            f"call {rng.choice(['+1 415 555 2671', '(212) 736-5000', '+44 20 7946 0958'])} if urgent",
            "the card on file is 4111 1111 1111 1111",
        ]
    )


def agent_text(rng: random.Random, size: int, profile: str = "dense") -> str:
    """``dense``: 20% log lines (timestamps, hex ids, an IP each), 20% JSON tool results, an
    e-mail/phone/card every ~1 KB. ``chat``: prose, code and JSON tool results, no logs, one
    e-mail/phone/card every ~2 KB."""
    parts: list[str] = []
    n = 0
    every = 1000 if profile == "dense" else 2000
    next_entity = every - 100
    while n < size:
        if n >= next_entity:
            part = entity(rng)
            next_entity += every
        else:
            kind = rng.random()
            if profile == "dense":
                part = (
                    rng.choice(PROSE)
                    if kind < 0.45
                    else rng.choice(CODE)
                    if kind < 0.6
                    else log_line(rng)
                    if kind < 0.8
                    else tool_result(rng)
                )
            else:
                part = (
                    rng.choice(PROSE) if kind < 0.6 else rng.choice(CODE) if kind < 0.85 else tool_result(rng)
                )
        parts.append(part)
        n += len(part) + 1
    return "\n".join(parts)[:size]


def call_for(messages: Messages) -> Call:
    return Call("bench", Endpoint.CHAT, {"model": "m", "messages": copy.deepcopy(messages)}, {})


def _p99(xs: list[float]) -> float:
    return round(sorted(xs)[min(len(xs) - 1, int(len(xs) * 0.99))], 3)


async def measure(stage: RedactInStage, make: Callable[[int], Messages], iterations: int) -> dict[str, float]:
    """Wall time and process CPU time (event loop + analysis worker threads) per ``redact_in`` call."""
    wall, cpu = [], []
    for i in range(iterations):
        call = call_for(make(i))
        t0, c0 = time.perf_counter(), time.process_time()
        await stage.on_request(call)
        cpu.append((time.process_time() - c0) * 1000)
        wall.append((time.perf_counter() - t0) * 1000)
    return {
        "p50_ms": round(statistics.median(wall), 3),
        "p99_ms": _p99(wall),
        "cpu_p50_ms": round(statistics.median(cpu), 3),
        "cpu_p99_ms": _p99(cpu),
    }


async def per_call(iterations: int, prefilter: bool, profile: str) -> dict[str, Any]:
    rng = random.Random(7)
    redactor = build(RedactionSettings())
    engine = redactor.engine
    if not prefilter:
        full = engine.detect
        engine.detect = lambda text, prefilter=True: full(text, prefilter=False)  # type: ignore[method-assign]
    stage = RedactInStage(redactor)
    small = [agent_text(rng, 200, profile) for _ in range(iterations)]
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": agent_text(rng, 2048, profile)}
        for i in range(20)
    ]
    await stage.on_request(call_for(history))  # the conversation so far: seen once, now cached
    new_2k = [agent_text(rng, 2048, profile) for _ in range(iterations)]
    big_n = max(30, iterations // 3)
    new_20k = [agent_text(rng, 20480, profile) for _ in range(big_n)]
    try:
        return {
            "a_200B": await measure(stage, lambda i: [{"role": "user", "content": small[i]}], iterations),
            "b_2KB_on_40KB_seen": await measure(
                stage, lambda i: [*history, {"role": "user", "content": new_2k[i]}], iterations
            ),
            "c_20KB": await measure(stage, lambda i: [{"role": "user", "content": new_20k[i]}], big_n),
        }
    finally:
        engine.close()


def rps(seconds: int) -> dict[str, Any]:
    from bench.common import CHAT_BODY, fake_upstream, gateway, wrk

    body = copy.deepcopy(CHAT_BODY)
    body["messages"][1]["content"] += " My email is jane.doe@example.com and my card 4111 1111 1111 1111."
    out: dict[str, Any] = {}
    with fake_upstream() as upstream:
        for label, config in (("off", {}), ("on", {"redaction": {"enabled": True}})):
            with gateway(upstream, config) as gw:
                for stream in (False, True):
                    b = {**body, "stream": stream}
                    wrk(gw.url + "/chat/completions", b, 8, 2)  # warm-up
                    r = wrk(gw.url + "/chat/completions", b, 32, seconds)
                    out[f"{label}_{'stream' if stream else 'non_stream'}"] = {
                        "rps": round(r.rps),
                        "p50_ms": r.p50_ms,
                        "p99_ms": r.p99_ms,
                        "errors": r.errors,
                    }
                out[f"rss_mb_{label}"] = round(_rss_mb(gw.pid), 1)
    return out


def _rss_mb(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--no-rps", action="store_true")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    t0 = time.perf_counter()
    build(RedactionSettings()).engine.close()
    results: dict[str, Any] = {
        "engine_build_and_warm_up_s": round(time.perf_counter() - t0, 3),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
    }
    for profile in ("dense", "chat"):
        results[f"{profile}/prefilter"] = await per_call(args.iterations, True, profile)
        results[f"{profile}/no_prefilter"] = await per_call(max(30, args.iterations // 3), False, profile)
    results["rss_mb_bench_process"] = round(_rss_mb(), 1)
    if not args.no_rps:
        results["gateway_c32"] = rps(args.seconds)
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"engine build + warm-up: {results['engine_build_and_warm_up_s']} s (imports excluded); "
        f"load average {results['load_average_at_start']} on {results['cpus']} CPUs"
    )
    for label in ("dense/prefilter", "dense/no_prefilter", "chat/prefilter", "chat/no_prefilter"):
        print(f"\n{label}:")
        for case, r in results[label].items():
            print(
                f"  {case:<20} wall p50 {r['p50_ms']:>8.3f} ms  p99 {r['p99_ms']:>8.3f} ms   "
                f"cpu p50 {r['cpu_p50_ms']:>8.3f} ms  p99 {r['cpu_p99_ms']:>8.3f} ms"
            )
    print(f"\nRSS of this process with Presidio loaded: {results['rss_mb_bench_process']} MB")
    for key, value in results.get("gateway_c32", {}).items():
        print(f"gateway c=32 {key}: {value}")


if __name__ == "__main__":
    asyncio.run(main())
