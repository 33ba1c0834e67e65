"""Audit log benchmark: store throughput and record() latency, and the latency audit adds.

    .venv/bin/python bench/audit.py [--seconds 10] [--skip-store] [--skip-floor] [--skip-gateway]

1. Store: one process, N concurrent producers each building a call event and awaiting
   ``record_event`` (durable on return), for SQLite and PostgreSQL: sustained events/s and
   record() p50/p99 at c=1, 32 and 256, and the gateway process's CPU per event (build, seal,
   encode, commit bookkeeping: the number that bounds events/s per core on a busy machine).
2. Commit floor: what one durable commit of one event costs the store itself, with nothing
   of the gateway around it: ``store.append`` of a sealed event, one at a time, idle between
   them as a c=1 gateway is, with PostgreSQL's ``synchronous_commit`` on and off (the
   difference is the WAL flush a durable answer must wait for), beside the disk's own
   ``write`` + ``fdatasync`` of one 8 KiB page. No gateway can add less than the durable
   commit at c=1 while keeping "durable before the answer".
3. Gateway: the same non-stream chat load through a gateway (one worker, guards off) with
   audit off, SQLite and PostgreSQL, at c=1 and c=32 (wrk); the added p50/p99 vs audit off,
   and the audit hook's own time from the gateway's stage histogram (the added latency
   measured inside the gateway, which a busy machine disturbs far less than wrk's end to end),
   with the part of it that is the store's commit (``wardgate_audit_commit_seconds``).

4. Anchors (``bench/audit_anchors.py``): signing a checkpoint head, writing a signed anchor,
   their cost per event at the default intervals, and ``verify`` with and without anchors.

Targets (issue 8): >= 5,000 events/s into PostgreSQL from one worker; <= 0.5 ms p50 added.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx

from bench.common import CHAT_BODY, cpu_seconds, fake_upstream, gateway, wrk
from gateway.audit.chain import ShardChain
from gateway.audit.config import AuditSettings
from gateway.audit.events import build_call_event
from gateway.audit.service import AuditService
from gateway.audit.store import make_store
from gateway.audit.verify import verify
from gateway.call import Call, Decision, Endpoint, Principal, Usage

PG_DSN = "postgresql://root@127.0.0.1:5432/test"


def _call(i: int) -> Call:
    call = Call(
        request_id=f"req_{i}",
        endpoint=Endpoint.CHAT,
        body={},
        headers={},
        model="gpt-4o-mini",
        principal=Principal("key-bench", "team-bench", "bench"),
        agent_id="agent-bench",
        run_id=f"run-{i % 100}",
    )
    call.decisions.append(Decision("policy_request", "request", "allow", [], "rev-1", {"rule": "default"}))
    call.usage = Usage(120, 30)
    call.cost_usd = 0.00012
    call.upstream_status = 200
    call.upstream_model = "gpt-4o-mini-2024-07-18"
    call.deployment = "openai"
    call.timings = {
        "authenticate": 2e-5,
        "limit": 1e-4,
        "policy_request": 2e-4,
        "forward": 0.2,
        "settle": 1e-4,
    }
    call.pii = {"entities": {"EMAIL_ADDRESS": 1}, "locations": [], "unscanned": 0}
    return call


async def _drop_schema(schema: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def _pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000 if values else float("nan")


async def _store_run(
    settings: AuditSettings, data_dir: Path, conc: int, seconds: float
) -> tuple[float, list[float], float]:
    service = AuditService(settings, make_store(settings, data_dir))
    await service.start()
    calls = [_call(i) for i in range(1000)]
    latencies: list[float] = []
    stop = time.monotonic() + seconds
    count = 0

    async def producer(w: int) -> None:
        nonlocal count
        i = w
        while time.monotonic() < stop:
            event = build_call_event(calls[i % 1000])
            t0 = time.perf_counter()
            await service.record_event(event)
            latencies.append(time.perf_counter() - t0)
            count += 1
            i += conc

    t0, cpu0 = time.monotonic(), time.process_time()
    await asyncio.gather(*(producer(w) for w in range(conc)))
    elapsed, cpu = time.monotonic() - t0, time.process_time() - cpu0
    if conc == 256:
        v0 = time.monotonic()
        report = await verify(service.store)
        print(
            f"{settings.backend:8s} verify: {report.events} events, ok={report.ok}, "
            f"{report.events / (time.monotonic() - v0):,.0f} events/s"
        )
    await service.close()
    return count / elapsed, latencies, cpu / max(count, 1) * 1e6


async def store_bench(seconds: float) -> None:
    print(f"# store: sustained events/s and record() latency ({seconds:.0f} s per row, one process)")
    for backend in ("sqlite", "postgres"):
        for conc in (1, 32, 256):
            root = Path(tempfile.mkdtemp(prefix="wg-bench-audit-"))
            schema = f"wgbench_audit_{uuid.uuid4().hex[:8]}"
            settings = AuditSettings(
                backend=backend, sqlite_path=root / "audit.db", postgres_dsn=PG_DSN, postgres_schema=schema
            )
            try:
                rate, lat, cpu_us = await _store_run(settings, root, conc, seconds)
            finally:
                if backend == "postgres":
                    await _drop_schema(schema)
            print(
                f"{backend:8s} c={conc:<3d} {rate:8.0f} events/s   record() p50 {_pct(lat, 0.5):7.3f} ms  "
                f"p99 {_pct(lat, 0.99):7.3f} ms  mean {statistics.fmean(lat) * 1000:7.3f} ms  "
                f"gateway CPU {cpu_us:4.0f} µs/event"
            )
            sys.stdout.flush()


async def _floor_run(settings: AuditSettings, data_dir: Path, n: int, idle_s: float) -> list[float]:
    store = make_store(settings, data_dir)
    await store.open()
    chain = ShardChain("bench-floor")
    latencies: list[float] = []
    try:
        for i in range(n):
            sealed = chain.seal([build_call_event(_call(i))])
            t0 = time.perf_counter()
            await store.append(chain.shard, sealed.rows, sealed.head)
            latencies.append(time.perf_counter() - t0)
            chain.advance(sealed.head)
            await asyncio.sleep(idle_s)
    finally:
        await store.close()
    return latencies


def _disk_flush(path: Path, n: int, idle_s: float) -> list[float]:
    """The disk's own floor: write 8 KiB (one WAL page) and ``fdatasync``, as a commit must."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    latencies: list[float] = []
    try:
        os.write(fd, b"\0" * (16 << 20))  # preallocated, like a WAL segment
        os.fsync(fd)
        page = b"x" * 8192
        for i in range(n):
            os.lseek(fd, (i % 2048) * 8192, os.SEEK_SET)
            t0 = time.perf_counter()
            os.write(fd, page)
            os.fdatasync(fd)
            latencies.append(time.perf_counter() - t0)
            time.sleep(idle_s)
    finally:
        os.close(fd)
        path.unlink(missing_ok=True)
    return latencies


async def floor_bench(n: int = 3000, idle_s: float = 0.0007) -> None:
    print(
        f"\n# commit floor: store.append of one sealed event, {n} times, idle {idle_s * 1000:.1f} ms between "
        "(a c=1 gateway's cadence), no gateway"
    )
    flush = _disk_flush(Path(tempfile.gettempdir()) / f"wg-bench-flush-{uuid.uuid4().hex[:8]}", n, idle_s)
    print(
        f"{'disk: write 8 KiB + fdatasync':36s} p50 {_pct(flush, 0.5):6.3f} ms  p99 {_pct(flush, 0.99):6.3f} ms  "
        f"mean {statistics.fmean(flush) * 1000:6.3f} ms   (tempdir; PostgreSQL's WAL must wait for this)"
    )
    variants = [("sqlite", "on"), ("postgres", "on"), ("postgres", "off")]
    for backend, sync in variants:
        root = Path(tempfile.mkdtemp(prefix="wg-bench-floor-"))
        schema = f"wgbench_floor_{uuid.uuid4().hex[:8]}"
        settings = AuditSettings(
            backend=backend,
            sqlite_path=root / "audit.db",
            postgres_dsn=PG_DSN,
            postgres_schema=schema,
            postgres_synchronous_commit=sync,
        )
        try:
            lat = await _floor_run(settings, root, n, idle_s)
        finally:
            if backend == "postgres":
                await _drop_schema(schema)
        label = "sqlite (NORMAL)" if backend == "sqlite" else f"postgres synchronous_commit={sync}"
        print(
            f"{label:36s} commit p50 {_pct(lat, 0.5):6.3f} ms  p99 {_pct(lat, 0.99):6.3f} ms  "
            f"mean {statistics.fmean(lat) * 1000:6.3f} ms"
        )
        sys.stdout.flush()


_COMMIT = re.compile(r"^wardgate_audit_commit_seconds_(sum|count) (\S+)$")


def _commit(metrics: str) -> tuple[float, float]:
    """The gateway's own ``wardgate_audit_commit_seconds`` (sum, count)."""
    found = {"sum": 0.0, "count": 0.0}
    for line in metrics.splitlines():
        m = _COMMIT.match(line)
        if m is not None:
            found[m[1]] = float(m[2])
    return found["sum"], found["count"]


_BUCKET = re.compile(
    r'^wardgate_stage_duration_seconds_(bucket|sum|count)\{(?:le="([^"]+)",)?stage="audit"\} (\S+)$'
)


def _audit_stage(metrics: str) -> tuple[dict[float, float], float, float]:
    """The gateway's own histogram of the audit hook: (cumulative buckets, sum, count)."""
    buckets: dict[float, float] = {}
    total = count = 0.0
    for line in metrics.splitlines():
        m = _BUCKET.match(line)
        if m is None:
            continue
        kind, le, value = m.groups()
        if kind == "bucket":
            buckets[float(le)] = float(value)
        elif kind == "sum":
            total = float(value)
        else:
            count = float(value)
    return buckets, total, count


def _stage_delta(
    before: tuple[dict[float, float], float, float], after: tuple[dict[float, float], float, float]
) -> str:
    n = after[2] - before[2]
    if n <= 0:
        return ""
    cum = sorted((le, after[0][le] - before[0].get(le, 0.0)) for le in after[0])

    def q(p: float) -> str:
        le = next((le for le, c in cum if c >= p * n), float("inf"))
        return f"<={le * 1000:g} ms"

    return f"  audit hook mean {(after[1] - before[1]) / n * 1000:.3f} ms, p50 {q(0.5)}, p99 {q(0.99)}"


def gateway_bench(seconds: int) -> None:
    print(f"\n# gateway: non-stream chat, one worker, guards off, audit off vs on ({seconds} s per row)")
    schema = f"wgbench_audit_{uuid.uuid4().hex[:8]}"
    configs = {
        "off": {},
        "sqlite": {"audit": {"enabled": True, "backend": "sqlite"}},
        "postgres": {
            "audit": {
                "enabled": True,
                "backend": "postgres",
                "postgres_dsn": PG_DSN,
                "postgres_schema": schema,
            }
        },
    }
    base: dict[int, tuple[float, float]] = {}
    try:
        with fake_upstream() as upstream:
            for name, config in configs.items():
                with gateway(upstream, config) as gw:
                    url = gw.url + "/chat/completions"
                    wrk(url, CHAT_BODY, 8, 2)  # warm-up
                    base_url = gw.url.removesuffix("/v1")
                    for conns in (1, 32):
                        cpu0 = cpu_seconds(gw.pid)
                        before = httpx.get(base_url + "/metrics").text
                        r = wrk(url, CHAT_BODY, conns, seconds)
                        cpu = (cpu_seconds(gw.pid) - cpu0) / max(r.requests, 1) * 1e6
                        after = httpx.get(base_url + "/metrics").text
                        hook = _stage_delta(_audit_stage(before), _audit_stage(after))
                        commit0, commit1 = _commit(before), _commit(after)
                        if commit1[1] > commit0[1]:
                            hook += f", of which commit mean {(commit1[0] - commit0[0]) / (commit1[1] - commit0[1]) * 1000:.3f} ms"
                        line = f"audit {name:8s} c={conns:<3d} {r.row()}  cpu {cpu:5.0f} µs/req"
                        if name == "off":
                            base[conns] = (r.p50_ms, r.p99_ms)
                        else:
                            line += (
                                f"  added p50 {r.p50_ms - base[conns][0]:+.3f} ms"
                                f" p99 {r.p99_ms - base[conns][1]:+.3f} ms{hook}"
                            )
                        print(line)
                        sys.stdout.flush()
    finally:
        asyncio.run(_drop_schema(schema))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--skip-store", action="store_true")
    parser.add_argument("--skip-floor", action="store_true")
    parser.add_argument("--skip-gateway", action="store_true")
    parser.add_argument("--skip-anchors", action="store_true")
    parser.add_argument("--anchor-events", type=int, default=50_000)
    args = parser.parse_args()
    try:
        from uvloop import run as run_async
    except ImportError:
        run_async = asyncio.run
    if not args.skip_store:
        run_async(store_bench(args.seconds))
    if not args.skip_floor:
        run_async(floor_bench())
    if not args.skip_anchors:
        from bench.audit_anchors import anchor_bench

        calls = [_call(i) for i in range(1000)]
        run_async(anchor_bench(lambda i: build_call_event(calls[i % 1000]), args.anchor_events))
    if not args.skip_gateway:
        gateway_bench(args.seconds)


if __name__ == "__main__":
    main()
