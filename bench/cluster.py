"""The production topology under load: RPS, latency and CPU per request vs one process.

    .venv/bin/python bench/cluster.py [--duration 30] [--concurrency 64] [--workers 2]

Topology (``tests/e2e/topology.py``, the one the e2e tests run): two ``wardgate serve
--workers N`` replicas behind HAProxy (keep-alive to the replicas), every guard on, limits and
approvals on Redis (127.0.0.1:6379), keys and audit on PostgreSQL (127.0.0.1:5432, db
``test``), policies on the OPA-REST server (``tests/opa_server.py``, in this process), the
fast fake upstream (``tests/fake_openai.py --fast``). The load is ``wrk`` (c=concurrency,
one thread, pinned to core 1 like bench/overhead.py) through HAProxy.

Reference, in the same run and by bench/overhead.py's method: one ``wardgate serve`` process
(one worker, pinned to core 0) with the embedded defaults (memory limits and approvals,
keys.yaml, regorus policy, SQLite audit), same policies and body, driven directly.

CPU per request is the replicas' CPU (each replica's supervisor and workers: user + system
from /proc) divided by the requests wrk completed; the single process's likewise. The target
(issue 19): cluster <= 1.3x single, i.e. the Redis/PostgreSQL/OPA round trips cost at most
30% more gateway CPU than the embedded defaults. HAProxy, Redis, PostgreSQL and the OPA
server are not counted (they are not the gateway's CPU). Wall-clock numbers need a quiet
machine; CPU per request is meaningful under load too (it is the processes' own CPU time).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import WrkResult, cpu_seconds, fake_upstream, pinned, wrk
from gateway.http.launch import GatewayProcess
from tests.e2e.topology import Topology
from tests.harness import REPO, TEST_KEY

BODY: dict[str, Any] = {
    "model": "gpt-test",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant for an online shop."},
        {"role": "user", "content": "What is the status of my order 1234? It was placed last Tuesday."},
    ],
    "max_tokens": 64,
}


def _single_config(topology: Topology) -> dict[str, Any]:
    """One process, every guard on, the embedded defaults (what a single-node start runs)."""
    config = topology.config("single")
    config["server"] = {"workers": 1, "log_level": "warning"}
    config["limits"] = {"backend": "memory"}
    config["approvals"] = {"backend": "memory"}
    config["keys"] = {"backend": "file"}
    config["policy"] = {"engine": "regorus"}
    config["audit"] = {"backend": "sqlite"}
    return config


#: ``--breakdown``: the single process with one shared backend at a time, each as the cluster
#: configures it (what each costs in CPU per request, without HAProxy or several processes).
SWAPS = ("embedded", "policy", "limits", "approvals", "keys", "audit", "all")


def _swapped_config(topology: Topology, swap: str) -> dict[str, Any]:
    config = _single_config(topology)
    shared = topology.config("single")
    for section in SWAPS[1:-1]:
        if swap in (section, "all"):
            config[section] = shared[section]
    return config


def _breakdown(topology: Topology, root: Path, args: argparse.Namespace) -> None:
    base = None
    for swap in SWAPS:
        proc = GatewayProcess(
            _swapped_config(topology, swap), root, env=topology.env("single"), cwd=REPO, prefix=pinned([], 0)
        )
        with contextlib.ExitStack() as stack:
            stack.callback(proc.stop)
            proc.start(timeout_s=180)
            res, cpu, idle = _measure(proc.base_url + "/chat/completions", [proc.pid], args)
        base = base or cpu
        print(
            f"{swap:<10s} {res.row()}  cpu {cpu:7.0f} µs/req (idle {idle:5.0f})  x{cpu / base:.2f}",
            flush=True,
        )


def _measure(url: str, pids: list[int], args: argparse.Namespace) -> tuple[WrkResult, float, float]:
    """wrk through ``url``: the result, CPU µs per request, and the idle CPU µs per request.

    Idle: the processes' CPU over ``--idle`` seconds without load (timers, lease renewal, the
    keys version check, health probes), scaled to the load's duration and divided the same
    way; it is part of the figure (a replica pays it) and is shown so a low-RPS run (a busy
    machine) is not mistaken for per-call cost."""
    wrk(url, BODY, min(8, args.concurrency), 2, key=TEST_KEY)  # warm-up
    idle0 = sum(cpu_seconds(p) for p in pids)
    time.sleep(args.idle)
    idle_rate = (sum(cpu_seconds(p) for p in pids) - idle0) / args.idle
    cpu0 = sum(cpu_seconds(p) for p in pids)
    res = wrk(url, BODY, args.concurrency, args.duration, key=TEST_KEY)
    cpu = sum(cpu_seconds(p) for p in pids) - cpu0
    n = max(res.requests, 1)
    return res, cpu / n * 1e6, idle_rate * args.duration / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=30, help="seconds of load per measurement")
    parser.add_argument("--concurrency", type=int, default=64, help="wrk connections")
    parser.add_argument("--workers", type=int, default=2, help="workers per replica")
    parser.add_argument("--idle", type=float, default=5.0, help="seconds of idle CPU measured first")
    parser.add_argument("--check-ms", type=int, default=1000, help="HAProxy /readyz check interval")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres-dsn", default="postgresql://root@127.0.0.1:5432/test")
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="instead: one pinned process, each shared backend swapped in alone (" + ", ".join(SWAPS) + ")",
    )
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="wg-bench-cluster-"))
    with fake_upstream() as upstream:
        topology = Topology(
            root,
            upstream,
            redis_url=args.redis_url,
            postgres_dsn=args.postgres_dsn,
            workers=args.workers,
            server_close=False,
            check_ms=args.check_ms,
        )
        try:
            if args.breakdown:
                topology._write_policies()
                topology.opa.start()
                _breakdown(topology, root, args)
                return
            topology.start()
            single = GatewayProcess(
                _single_config(topology), root, env=topology.env("single"), cwd=REPO, prefix=pinned([], 0)
            )
            with contextlib.ExitStack() as stack:
                stack.callback(single.stop)
                single.start(timeout_s=180)
                one, one_cpu, one_idle = _measure(single.base_url + "/chat/completions", [single.pid], args)
            many, many_cpu, many_idle = _measure(
                topology.base_url + "/chat/completions", topology.pids(), args
            )
        finally:
            topology.stop()
            shutil.rmtree(root, ignore_errors=True)
    print(f"c={args.concurrency} {args.duration}s, every guard on, fake upstream")
    print(f"single process (embedded)   {one.row()}  cpu {one_cpu:7.0f} µs/req (idle {one_idle:5.0f})")
    cluster = f"cluster {len(topology.names)}x{args.workers} via HAProxy"
    print(f"{cluster:<27s} {many.row()}  cpu {many_cpu:7.0f} µs/req (idle {many_idle:5.0f})")
    ratio = many_cpu / max(one_cpu, 1e-9)
    busy = (many_cpu - many_idle) / max(one_cpu - one_idle, 1e-9)
    verdict = "ok" if ratio <= 1.3 else "OVER TARGET"
    print(
        f"cluster / single CPU per request: {ratio:.2f}x (target <= 1.3x: {verdict}); idle excluded {busy:.2f}x"
    )


if __name__ == "__main__":
    main()
