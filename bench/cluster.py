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

``--floor``: first, the same topology with every guard on its embedded default in each
process (``EmbeddedTopology``): what replicas x workers sharing the machine's cores cost by
themselves. ``cluster / floor`` is then the shared backends' own share of the ratio, the part
the target's intent is about; ``floor / single`` is the machine's (on 2 cores, 4 workers and
HAProxy contend for them: context switches, caches, fewer requests per loop wake-up).

``--callgrind N``: instead, instructions per call of one gateway process under callgrind (N
calls, ``--callgrind-conns`` at a time, after a warm-up; the idle instructions over the same
time taken out), a count other load on the machine does not change: the embedded single
process against one replica's worker as the cluster configures it (every shared backend and
``PROMETHEUS_MULTIPROC_DIR``); ``--cases`` picks the breakdown's rows. It leaves out what only
several processes on shared cores cost (context switches, caches, the supervisor), which only
the quiet run shows.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

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


#: The embedded defaults of the sections the cluster shares (what a single-node start runs).
EMBEDDED: dict[str, Any] = {
    "limits": {"backend": "memory"},
    "approvals": {"backend": "memory"},
    "keys": {"backend": "file"},
    "policy": {"engine": "regorus"},
    "audit": {"backend": "sqlite"},
}


def _single_config(topology: Topology) -> dict[str, Any]:
    """One process, every guard on, the embedded defaults."""
    config = topology.config("single")
    config["server"] = {"workers": 1, "log_level": "warning"}
    config.update(EMBEDDED)
    return config


#: ``--breakdown``: the single process with one shared setting at a time, each as the cluster
#: configures it (what each costs in CPU per request, without HAProxy or several processes):
#: the five backends, and ``metrics``, the Prometheus multiprocess directory every replica of
#: ``--workers N`` needs (prometheus-client then keeps every value in a per-process file);
#: ``all`` is all of them: one replica's worker.
SWAPS = ("embedded", "policy", "limits", "approvals", "keys", "audit", "metrics", "all")


class EmbeddedTopology(Topology):
    """``--floor``: the same shape (replicas x workers behind HAProxy, the Prometheus
    multiprocess directory) with every guard on its embedded default in each process (memory
    limits and approvals, keys.yaml, regorus, SQLite audit): what the processes sharing the
    cores cost by themselves, with no shared backend. State is per process (opted in), so it is
    a measuring floor, never a deployment."""

    def config(self, name: str) -> dict[str, Any]:
        config = super().config(name)
        config["server"]["allow_per_process_state"] = True
        config.update(EMBEDDED)
        return config


def _single_env(topology: Topology) -> dict[str, str]:
    """The single process's environment: one worker, so no Prometheus multiprocess directory."""
    env = topology.env("single")
    env.pop("PROMETHEUS_MULTIPROC_DIR")
    return env


def _swapped(topology: Topology, swap: str) -> tuple[dict[str, Any], dict[str, str]]:
    config, env = _single_config(topology), _single_env(topology)
    shared = topology.config("single")
    for section in SWAPS[1:-2]:
        if swap in (section, "all"):
            config[section] = shared[section]
    if swap in ("metrics", "all"):
        env = topology.env("single")
    return config, env


def _breakdown(topology: Topology, root: Path, args: argparse.Namespace) -> None:
    base = None
    for swap in SWAPS:
        config, env = _swapped(topology, swap)
        proc = GatewayProcess(config, root, env=env, cwd=REPO, prefix=pinned([], 0))
        with contextlib.ExitStack() as stack:
            stack.callback(proc.stop)
            proc.start(timeout_s=180)
            res, cpu, idle = _measure(proc.base_url + "/chat/completions", [proc.pid], args)
        base = base or cpu
        print(
            f"{swap:<10s} {res.row()}  cpu {cpu:7.0f} µs/req (idle {idle:5.0f})  x{cpu / base:.2f}",
            flush=True,
        )


def _dump(out_dir: Path, pid: int, seen: set[Path]) -> tuple[int, set[Path]]:
    """Dump ``pid``'s callgrind counters; the instructions since the last zeroing."""
    subprocess.run(["callgrind_control", "-d", str(pid)], check=True, capture_output=True)
    for _ in range(1200):
        files = set(out_dir.glob("cg.*"))
        fresh = [f for f in files - seen if f.stat().st_size > 0]
        if fresh:
            time.sleep(0.5)  # let the dump finish writing
            found = re.search(r"^(?:summary|totals): (\d+)", fresh[0].read_text(errors="replace"), re.M)
            if found:
                return int(found.group(1)), files
        time.sleep(0.1)
    raise TimeoutError("callgrind wrote no dump")


async def _drive(url: str, calls: int, conns: int) -> None:
    """Exactly ``calls`` calls, ``conns`` at a time (every one answered before this returns)."""
    headers = {"authorization": f"Bearer {TEST_KEY}"}
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    async with httpx.AsyncClient(timeout=600, limits=limits) as client:
        left = iter(range(calls))

        async def worker() -> None:
            for _ in left:
                (await client.post(url, json=BODY, headers=headers)).raise_for_status()

        await asyncio.gather(*(worker() for _ in range(conns)))


def callgrind(
    config: dict[str, Any], env: dict[str, str], root: Path, calls: int, conns: int, *, cwd: Path = REPO
) -> tuple[float, float]:
    """``(instructions per call, of which idle)`` of one gateway process under callgrind: started
    uninstrumented (minutes faster), warmed up, then exactly ``calls`` calls, ``conns`` at a time
    (as under load: batched audit commits, several calls per loop turn); the idle instructions
    per second (timers, lease renewal, the keys version check) are measured over 5 s first and
    taken out of the calls' total at the same rate."""
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed: apt-get install -y valgrind")
    # Under callgrind a worker runs ~50x slower: calls queued behind others would outlast the
    # connection deadlines (the header timeout closed a connection without an answer).
    server = config.get("server") or {}
    config = {
        **config,
        "server": {**server, "header_timeout_s": 600, "body_timeout_s": 600, "keepalive_timeout_s": 600},
    }
    out_dir = Path(tempfile.mkdtemp(prefix="wg-cluster-cg-"))
    wrap = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_dir}/cg.%p"]
    proc = GatewayProcess(config, root, env=env, cwd=cwd, prefix=wrap)

    def control(*flags: str) -> None:
        subprocess.run(["callgrind_control", *flags, str(proc.pid)], check=True, capture_output=True)

    try:
        proc.start(timeout_s=900)
        url = proc.base_url + "/chat/completions"
        asyncio.run(_drive(url, 3 * conns, conns))  # warm-up, uninstrumented
        control("-i", "on")
        asyncio.run(_drive(url, conns, conns))
        control("-z")
        t0 = time.monotonic()
        time.sleep(5)
        idle, seen = _dump(out_dir, proc.pid, set())
        idle_rate = idle / (time.monotonic() - t0)
        control("-z")
        t0 = time.monotonic()
        asyncio.run(_drive(url, calls, conns))
        busy, _ = _dump(out_dir, proc.pid, seen)
        elapsed = time.monotonic() - t0
    finally:
        proc.stop(timeout_s=120)
        shutil.rmtree(out_dir, ignore_errors=True)
    return (busy - idle_rate * elapsed) / calls, idle_rate * elapsed / calls


def _callgrind_main(topology: Topology, root: Path, args: argparse.Namespace) -> None:
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - set(SWAPS)
    if unknown:
        raise SystemExit(f"unknown --cases {sorted(unknown)}: choose from {', '.join(SWAPS)}")
    base = None
    for case in cases:
        config, env = _swapped(topology, case)
        per_call, idle = callgrind(config, env, root, args.callgrind, args.callgrind_conns)
        base = base or per_call
        print(
            f"callgrind {case:<10s} {per_call / 1000:9,.1f}k instructions/call "
            f"(idle taken out: {idle / 1000:,.1f}k)  x{per_call / base:.2f}",
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
        "--callgrind", type=int, default=0, help="instead: instructions per call over N calls"
    )
    parser.add_argument("--callgrind-conns", type=int, default=16, help="--callgrind's calls in flight")
    parser.add_argument(
        "--cases",
        default="embedded,all",
        help="--callgrind's processes: "
        + ", ".join(SWAPS)
        + " (the first is the base; all: a replica's worker)",
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="instead: one pinned process, each shared backend swapped in alone (" + ", ".join(SWAPS) + ")",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also the same topology with every guard embedded per process (what sharing the cores costs)",
    )
    args = parser.parse_args()
    floor = _floor(args) if args.floor else None
    root = Path(tempfile.mkdtemp(prefix="wg-bench-cluster-"))
    with fake_upstream() as upstream:
        topology = _topology(Topology, root, upstream, args)
        try:
            if args.breakdown or args.callgrind:
                topology._write_policies()
                topology.opa.start()
                if args.callgrind:
                    _callgrind_main(topology, root, args)
                else:
                    _breakdown(topology, root, args)
                return
            topology.start()
            single = GatewayProcess(
                _single_config(topology), root, env=_single_env(topology), cwd=REPO, prefix=pinned([], 0)
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
    if floor is not None:
        res, cpu = floor
        label = f"floor {len(topology.names)}x{args.workers}, embedded"
        print(f"{label:<27s} {res.row()}  cpu {cpu:7.0f} µs/req")
        print(
            f"floor / single: {cpu / max(one_cpu, 1e-9):.2f}x (processes sharing the cores); "
            f"cluster / floor: {many_cpu / max(cpu, 1e-9):.2f}x (the shared backends' own share)"
        )


def _topology(kind: type[Topology], root: Path, upstream: str, args: argparse.Namespace) -> Topology:
    """The bench's topology: keep-alive to the replicas, ``--check-ms`` health checks."""
    return kind(
        root,
        upstream,
        redis_url=args.redis_url,
        postgres_dsn=args.postgres_dsn,
        workers=args.workers,
        server_close=False,
        check_ms=args.check_ms,
    )


def _floor(args: argparse.Namespace) -> tuple[Any, float]:
    """The ``EmbeddedTopology`` under the same load, measured before the real one."""
    root = Path(tempfile.mkdtemp(prefix="wg-bench-floor-"))
    with fake_upstream() as upstream:
        topology = _topology(EmbeddedTopology, root, upstream, args)
        try:
            topology.start()
            res, cpu, _ = _measure(topology.base_url + "/chat/completions", topology.pids(), args)
        finally:
            topology.stop()
            shutil.rmtree(root, ignore_errors=True)
    return res, cpu


if __name__ == "__main__":
    main()
