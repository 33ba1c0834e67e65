"""1,000 requests held for human approval at once: memory per waiter, approve → answer latency.

    .venv/bin/python bench/approvals.py [--n 1000] [--redis-url redis://127.0.0.1:6379/0]

Two measurements, both on Redis (the production backend):

1. Queue only (in process): ``n`` waiters on replica A, approvals made through replica B (a
   second store with its own connections, as another gateway would), so every wake-up goes
   through Redis pub/sub. Python heap per waiter (tracemalloc) and the latency from the
   start of the approve call to the waiter waking, approving one by one and all at once.
2. Through the gateway (HTTP): one gateway process (``wardgate serve``, one worker, pinned
   to core 0; the real Rego policies on, limits/redaction/audit off) holds ``n`` real
   chat-completion requests whose answer (the fake upstream's mock model) calls
   ``transfer_funds`` above the threshold; a reviewer approves them one by one through the
   admin API. RSS per held request, and the latency from sending the approve call to the
   client having read its answer.

Target (issue 7): p99 <= 50 ms from the approve call to the client receiving its answer.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import yaml
from cryptography.fernet import Fernet
from prometheus_client import CollectorRegistry

from bench.common import ADMIN_KEY, BENCH_KEY, REPO, free_port, pinned, sha, wait_http
from gateway.http.launch import GatewayProcess

BODY = {
    "model": "bench-model",
    "messages": [{"role": "user", "content": "Transfer 5000 USD to ACME for invoice 7"}],
    "tools": [
        {
            "type": "function",
            "function": {
                "name": "transfer_funds",
                "parameters": {
                    "type": "object",
                    "properties": {"amount": {"type": "number"}, "to": {"type": "string"}},
                },
            },
        }
    ],
}


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def summary(name: str, seconds: list[float]) -> str:
    ms = [s * 1000 for s in seconds]
    return (
        f"{name:44s} n={len(ms):5d}  p50 {pct(ms, 50):7.2f} ms  p99 {pct(ms, 99):7.2f} ms  "
        f"max {max(ms):7.2f} ms  mean {statistics.fmean(ms):7.2f} ms"
    )


# -- 1. the queue alone ----------------------------------------------------------------


async def queue_bench(n: int, redis_url: str) -> None:
    from gateway.approvals.config import ApprovalSettings
    from gateway.approvals.crypto import AnswerSealer
    from gateway.approvals.metrics import ApprovalMetrics
    from gateway.approvals.redis_store import RedisApprovalStore
    from gateway.approvals.service import ApprovalService
    from gateway.approvals.spec import ApprovalSpec
    from gateway.approvals.webhooks import WebhookSender
    from gateway.call import Call, Endpoint, Principal
    from gateway.keys.store import AdminPrincipal

    prefix = f"wgbench:{uuid.uuid4().hex[:8]}"
    sealer = AnswerSealer([Fernet.generate_key()])
    settings = ApprovalSettings(backend="redis", redis_url=redis_url, key_prefix=prefix)

    def service() -> ApprovalService:
        metrics = ApprovalMetrics(CollectorRegistry())
        store = RedisApprovalStore.from_url(redis_url, prefix, settings.retention_s)
        return ApprovalService(settings, store, sealer, metrics, WebhookSender({}, metrics))

    replica_a, replica_b = service(), service()
    await replica_a.start(sweep=False)
    await replica_b.start(sweep=False)
    reviewer = AdminPrincipal("bench-reviewer", "reviewer", frozenset({"approver"}), frozenset({"finance"}))
    principal = Principal("bench", "bench", "bench")
    spec = ApprovalSpec(
        mode="hold",
        ttl_s=600,
        hold_s=300,
        approvals_required=1,
        groups=["finance"],
        reasons=["transfer above 1000"],
        tool_calls=[{"id": "call_1", "name": "transfer_funds", "arguments": {"amount": 5000}}],
    )
    try:
        for mode in ("one by one", "all at once"):
            ids = []
            for i in range(n):
                call = Call(
                    f"req_{i}", Endpoint.CHAT, dict(BODY), {}, model="bench-model", principal=principal
                )
                ids.append(
                    (
                        await replica_a.create(
                            call, "response", spec, "sha256:x", {"kind": "json", "json": {"i": i}}
                        )
                    ).id
                )
            per_waiter, latencies = await _queue_round(
                replica_a, replica_b, reviewer, ids, one_by_one=mode == "one by one"
            )
            print(f"queue: {n} waiters, Python heap per waiter {per_waiter / 1024:.2f} KiB")
            print(summary(f"queue: approve → waiter woken ({mode})", latencies))
    finally:
        await replica_a.close()
        await replica_b.store.delete_all()
        await replica_b.close()


async def _queue_round(
    replica_a: Any, replica_b: Any, reviewer: Any, ids: list[str], *, one_by_one: bool
) -> tuple[float, list[float]]:
    woken: dict[str, float] = {}
    started: dict[str, float] = {}

    async def wait(approval_id: str) -> None:
        await replica_a.wait(approval_id, 300)
        woken[approval_id] = time.perf_counter()

    async def approve(approval_id: str) -> None:
        started[approval_id] = time.perf_counter()
        await replica_b.approve(approval_id, reviewer, None)

    gc.collect()
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    tasks = [asyncio.create_task(wait(i)) for i in ids]
    for _ in range(10_000):
        if len(replica_a.waiters) >= len(ids):
            break
        await asyncio.sleep(0.01)
    gc.collect()
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    per_waiter = sum(s.size_diff for s in after.compare_to(before, "filename")) / len(ids)
    if one_by_one:
        for approval_id in ids:
            await approve(approval_id)
    else:
        await asyncio.gather(*(approve(i) for i in ids))
    await asyncio.gather(*tasks)
    return per_waiter, [woken[i] - started[i] for i in ids]


# -- 2. through the gateway ------------------------------------------------------------


@contextmanager
def processes(redis_url: str, prefix: str) -> Iterator[tuple[str, int]]:
    root = Path(tempfile.mkdtemp(prefix="wg-bench-approvals-"))
    up_port = free_port()
    upstream = subprocess.Popen(
        pinned([sys.executable, str(REPO / "tests" / "fake_openai.py"), "--port", str(up_port)], 1),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    policies = root / "policies"
    shutil.copytree(REPO / "policies", policies)
    (policies / "keys.yaml").write_text(
        yaml.safe_dump(
            {
                "keys": [
                    {
                        "id": "bench",
                        "sha256": sha(BENCH_KEY),
                        "team": "bench",
                        "user": "bench",
                        "models": ["*"],
                    }
                ],
                "admin_keys": [
                    {
                        "id": "bench-admin",
                        "sha256": sha(ADMIN_KEY),
                        "user": "bench-admin",
                        "roles": ["approver"],
                        "groups": ["finance"],
                    }
                ],
            }
        )
    )
    dep = {
        "provider": "openai",
        "base_url": f"http://127.0.0.1:{up_port}/v1",
        "api_key_env": "BENCH_PROVIDER_KEY",
    }
    (policies / "models.yaml").write_text(
        yaml.safe_dump({"models": {"bench-model": {"endpoints": ["chat.completions"], "deployments": [dep]}}})
    )
    config = {
        "server": {"log_level": "warning"},
        "policies_dir": str(policies),
        "rego_dir": str(REPO / "rego"),
        "data_dir": str(root / "data"),
        "providers": {"timeout_s": 600},
        "limits": {"enabled": False},
        "redaction": {"enabled": False},
        "audit": {"enabled": False},
        "approvals": {
            "backend": "redis",
            "redis_url": redis_url,
            "key_prefix": prefix,
            "hold_s": 500,
            "ttl_s": 3600,
        },
    }
    gateway = GatewayProcess(
        config, root, env={"BENCH_PROVIDER_KEY": "sk-bench"}, prefix=pinned([], 0), cwd=REPO
    )
    try:
        wait_http(f"http://127.0.0.1:{up_port}/v1/models")
        gateway.start()
        yield gateway.url, gateway.pid
    finally:
        gateway.stop()
        upstream.terminate()
        upstream.wait(timeout=15)
        shutil.rmtree(root, ignore_errors=True)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def http_bench(n: int, redis_url: str) -> None:
    prefix = f"wgbench:{uuid.uuid4().hex[:8]}"
    with processes(redis_url, prefix) as (url, pid):
        agent = {"authorization": f"Bearer {BENCH_KEY}"}
        admin = {"authorization": f"Bearer {ADMIN_KEY}"}
        connector = aiohttp.TCPConnector(limit=0)
        async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=900)
        ) as session:
            received: dict[str, float] = {}
            failures: list[str] = []

            async def client() -> None:
                async with session.post(url + "/v1/chat/completions", json=BODY, headers=agent) as resp:
                    body = await resp.read()
                    done = time.perf_counter()
                    approval_id = resp.headers.get("x-wardgate-approval-id")
                    if resp.status != 200 or approval_id is None or b"transfer_funds" not in body:
                        failures.append(f"{resp.status} {body[:200]!r}")
                        return
                    received[approval_id] = done

            async def pending() -> list[str]:
                ids: list[str] = []
                cursor = None
                while True:
                    q = "status=pending&limit=200" + (f"&cursor={cursor}" if cursor else "")
                    async with session.get(f"{url}/admin/approvals?{q}", headers=admin) as resp:
                        page = await resp.json()
                    ids += [a["id"] for a in page["data"]]
                    cursor = page.get("next_cursor")
                    if not cursor:
                        return ids

            async def approve_all(ids: list[str], started: dict[str, float], approve_s: list[float]) -> None:
                for approval_id in ids:
                    t0 = time.perf_counter()
                    started[approval_id] = t0
                    async with session.post(
                        f"{url}/admin/approvals/{approval_id}/approve",
                        headers=admin,
                        json={"comment": "bench"},
                    ) as resp:
                        await resp.read()
                        if resp.status != 200:
                            failures.append(f"approve {resp.status}")
                    approve_s.append(time.perf_counter() - t0)

            # Warm-up: a few held and approved requests (imports, pools, caches).
            warm = [asyncio.create_task(client()) for _ in range(20)]
            for _ in range(1000):
                if len(ids := await pending()) >= 20:
                    break
                await asyncio.sleep(0.05)
            await approve_all(ids, {}, [])
            await asyncio.gather(*warm)
            received.clear()
            await asyncio.sleep(0.5)
            idle = rss_kib(pid)

            t0 = time.perf_counter()
            clients = [asyncio.create_task(client()) for _ in range(n)]
            while len(ids := await pending()) < n:
                if time.perf_counter() - t0 > 120:
                    raise SystemExit(
                        f"only {len(ids)} of {n} requests became pending; failures: {failures[:3]}"
                    )
                await asyncio.sleep(0.1)
            held_after = time.perf_counter() - t0
            await asyncio.sleep(0.5)
            held = rss_kib(pid)
            started: dict[str, float] = {}
            approve_s: list[float] = []
            await approve_all(ids, started, approve_s)
            await asyncio.gather(*clients)
        latencies = [received[i] - started[i] for i in ids if i in received]
        print(
            f"http: {n} requests held at once after {held_after:.1f} s; gateway RSS {idle / 1024:.1f} MiB idle → "
            f"{held / 1024:.1f} MiB held: {(held - idle) / n:.1f} KiB per held request"
        )
        print(summary("http: admin approve call (round trip)", approve_s))
        print(summary("http: approve call → client has its answer", latencies))
        if failures:
            print(f"http: {len(failures)} failures, e.g. {failures[:3]}")
    from gateway.approvals.redis_store import RedisApprovalStore

    cleanup = RedisApprovalStore.from_url(redis_url, prefix, 60)
    await cleanup.delete_all()
    await cleanup.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--skip-queue", action="store_true")
    parser.add_argument("--skip-http", action="store_true")
    args = parser.parse_args()
    if not args.skip_queue:
        asyncio.run(queue_bench(args.n, args.redis_url))
    if not args.skip_http:
        asyncio.run(http_bench(args.n, args.redis_url))


if __name__ == "__main__":
    main()
