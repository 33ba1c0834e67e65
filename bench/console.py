"""The console's approvals inbox under a full queue: server time of its pages, and how long a
new approval takes to appear in an open inbox.

    .venv/bin/python bench/console.py [--pending 1000] [--requests 300] [--arrivals 100]
                                      [--redis-url redis://127.0.0.1:6379/0]

One gateway process (``wardgate serve``, one worker, pinned to core 0) with the approval
queue and the console's sessions on Redis (the production backends). ``--pending`` approvals
are written straight into the queue's Redis store by this process, as another replica would
(so the gateway hears them over pub/sub like any other), spread over agents, runs, teams,
groups and tools.

1. Server time: ``GET /console/approvals`` (the inbox: every pending approval read from the
   pending index, filtered, the newest 100 rendered), ``/console/approvals/rows`` (what the
   live refresh fetches), a filtered inbox and one approval's detail page. Read from the
   page's ``Server-Timing`` header (``page``: wall time in the handler; ``cpu``: the worker
   thread's CPU time, which a busy machine does not inflate), one request at a time.
2. Appearance: an open inbox (the SSE stream ``/console/approvals/events`` and, on each
   event, a fetch of the rows, exactly what ``static/console.js`` does) while approvals are
   created one at a time; the time from just before the create call to the rows holding the
   new id.

Targets (issue 22): inbox p50 <= 50 ms and p99 <= 200 ms server time; creation to appearance
<= 1 s p99. Wall-clock numbers need a quiet machine; the ``cpu`` column holds under load.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import redis as redis_sync
from cryptography.fernet import Fernet

from bench.common import ADMIN_KEY, gateway

_TIMING = re.compile(r"(\w+);dur=([0-9.]+)")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def line(name: str, ms: list[float]) -> str:
    return (
        f"{name:38s} n={len(ms):4d}  p50 {pct(ms, 50):7.2f} ms  p99 {pct(ms, 99):7.2f} ms  "
        f"max {max(ms):7.2f} ms  mean {statistics.fmean(ms):7.2f} ms"
    )


def approval(i: int, now: float) -> Any:
    from gateway.approvals.model import Approval, Status, new_id

    tool = ("transfer_funds", "issue_refund", "delete_customer")[i % 3]
    return Approval(
        id=new_id(),
        status=Status.PENDING,
        phase="response",
        mode="defer",
        created_at=now - (10_000 - i) * 0.001,
        expires_at=now + 3600,
        principal={"key_id": f"key-{i % 20}", "team": f"team-{i % 7}", "user": f"agent-owner-{i % 20}"},
        endpoint="chat.completions",
        model="bench-model",
        fingerprint=uuid.uuid4().hex,
        agent_id=f"agent-{i % 13}",
        run_id=f"run-{i % 250}",
        reasons=[f"{tool} above the limit needs a reviewer (amount={1000 + i})"],
        tool_calls=[
            {"id": f"call_{i}", "name": tool, "arguments": {"amount": 1000 + i, "to": f"ACCT-{i:06d}"}}
        ],
        groups=[("finance", "support-leads", "ops")[i % 3]],
    )


async def seed(redis_url: str, prefix: str, n: int) -> None:
    from gateway.approvals.redis_store import RedisApprovalStore

    store = RedisApprovalStore.from_url(redis_url, prefix, 3600)
    now = time.time()
    for start in range(0, n, 200):
        await asyncio.gather(
            *(store.create(approval(i, now), None, None) for i in range(start, min(n, start + 200)))
        )
    await store.close()


def sign_in(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30, follow_redirects=False)
    token = _CSRF.search(client.get("/console/login").text)
    assert token, "no sign-in form"
    done = client.post(
        "/console/login",
        data={"key": ADMIN_KEY, "csrf_token": token.group(1), "next": "/console/"},
        headers={"origin": url},
    )
    assert done.status_code == 303, done.text
    return client


def server_times(client: httpx.Client, path: str, n: int) -> tuple[list[float], list[float], list[float]]:
    """(page wall ms, page cpu ms, client round trip ms) of ``n`` sequential GETs."""
    wall, cpu, trip = [], [], []
    for _ in range(n):
        started = time.perf_counter()
        r = client.get(path)
        trip.append((time.perf_counter() - started) * 1000)
        assert r.status_code == 200, (path, r.status_code)
        timing = dict(_TIMING.findall(r.headers["server-timing"]))
        wall.append(float(timing["page"]))
        cpu.append(float(timing["cpu"]))
    return wall, cpu, trip


def arrivals(url: str, client: httpx.Client, redis_url: str, prefix: str, n: int) -> list[float]:
    """Seconds from creating an approval to an open inbox's rows holding it."""
    from gateway.approvals.redis_store import RedisApprovalStore

    seen: dict[str, float] = {}
    changed = threading.Condition()
    stop = threading.Event()
    ready = threading.Event()

    def inbox() -> None:
        with client.stream("GET", "/console/approvals/events", timeout=None) as stream:
            ready.set()
            for text in stream.iter_lines():
                if stop.is_set():
                    return
                if text.startswith("data:"):
                    rows = client.get("/console/approvals/rows").text
                    now = time.perf_counter()
                    with changed:
                        for approval_id in re.findall(r'data-approval="(apr_[0-9a-f]+)"', rows):
                            seen.setdefault(approval_id, now)
                        changed.notify_all()

    watcher = threading.Thread(target=inbox, daemon=True)
    watcher.start()
    ready.wait(10)
    loop = asyncio.new_event_loop()
    store = RedisApprovalStore.from_url(redis_url, prefix, 3600)
    out: list[float] = []
    try:
        for i in range(n):
            record = approval(100_000 + i, time.time() + 1)
            started = time.perf_counter()
            loop.run_until_complete(store.create(record, None, None))
            with changed:
                changed.wait_for(lambda record=record: record.id in seen, timeout=5)
            out.append(seen.get(record.id, float("inf")) - started)
            time.sleep(0.05)
    finally:
        stop.set()
        loop.run_until_complete(store.close())
        loop.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pending", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--arrivals", type=int, default=100)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    prefix = f"wgbench-console-{uuid.uuid4().hex[:8]}"
    import os

    os.environ.setdefault("WARDGATE_APPROVALS_KEY", Fernet.generate_key().decode())
    config = {
        "approvals": {"enabled": True, "backend": "redis", "redis_url": args.redis_url, "key_prefix": prefix},
        "console": {"enabled": True},
    }
    try:
        with gateway("http://127.0.0.1:9/v1", config) as gw:
            url = gw.url.removesuffix("/v1")
            asyncio.run(seed(args.redis_url, prefix, args.pending))
            client = sign_in(url)
            first = re.search(r'data-approval="(apr_[0-9a-f]+)"', client.get("/console/approvals").text)
            assert first, "the inbox shows no approval"
            pages = {
                "inbox /console/approvals": "/console/approvals",
                "live refresh /console/approvals/rows": "/console/approvals/rows",
                "filtered inbox (team, tool)": "/console/approvals?team=team-3&tool=transfer_funds",
                "detail /console/approvals/{id}": f"/console/approvals/{first.group(1)}",
            }
            print(f"{args.pending} pending approvals on Redis; {args.requests} sequential requests per page")
            for name, path in pages.items():
                server_times(client, path, 20)  # warm-up
                wall, cpu, trip = server_times(client, path, args.requests)
                print(line(name + " [server]", wall))
                print(line(name + " [cpu]", cpu))
                print(line(name + " [round trip]", trip))
            seconds = arrivals(url, client, args.redis_url, prefix, args.arrivals)
            print(line("creation -> in an open inbox", [s * 1000 for s in seconds]))
            missed = sum(1 for s in seconds if s == float("inf"))
            if missed:
                print(f"  {missed} approvals did not appear within 5 s")
    finally:
        client_redis = redis_sync.Redis.from_url(args.redis_url)
        keys = list(client_redis.scan_iter(match="{" + prefix + ":*", count=1000))
        if keys:
            client_redis.delete(*keys)
        client_redis.close()


if __name__ == "__main__":
    main()
