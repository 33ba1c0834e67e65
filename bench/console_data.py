"""Console pages over a big audit log (issue 22): server time of a 200-call run timeline and
the spend page with 100,000 audit events in PostgreSQL.

    .venv/bin/python -m bench.console_data [--events 100000] [--requests 200]

It fills a fresh PostgreSQL schema with call events shaped like the gateway's (10 teams, 50
keys, 30 agents, 5 models, ~2,500 runs over 30 days, decisions with their "why", a tenth of
them denied), sealed into one hash chain, plus one run of 200 calls with content captures.
Then a gateway process (one worker, pinned to core 0) serves the console on that schema, and
a signed-in client times, sequentially after a warm-up:

- ``/console/runs/run-bench-200``: the run explorer's page for the 200-call run (timeline,
  captures checked against their hashes, sub-runs, rendered HTML);
- ``/console/spend`` (defaults: per team, 7 days) and ``/console/spend?window=30d``;
- ``/console/runs`` (runs active within 7 days) and ``/console/audit`` (first page).

Reported: p50 / p99 of the wall time per request over loopback (the client's own overhead
is ~1 ms); the target is p50 <= 50 ms, p99 <= 200 ms. The schema is dropped at the end.
Wall time is only meaningful on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import re
import statistics
import time
import uuid
from typing import Any

import asyncpg
import httpx

from bench.common import ADMIN_KEY, gateway
from gateway.audit.chain import ShardChain, new_shard_id
from gateway.audit.schema import KIND_CALL, canonical_json, iso_time, new_event_id, usd_to_nano
from gateway.audit.store.postgres import PostgresStore

PG_DSN = "postgresql://root@127.0.0.1:5432/test"
BIG_RUN = "run-bench-200"
TEAMS = [f"team-{i}" for i in range(10)]
MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "gpt-4.1-mini", "mock-chat"]
DAY = 86400.0


def _event(rng: random.Random, ts: float, run: str, agent: str, team: str, key: str) -> dict[str, Any]:
    model = rng.choice(MODELS)
    denied = rng.random() < 0.1
    cost = 0.0 if denied else round(rng.uniform(0.0001, 0.02), 6)
    why = {
        "engine": "regorus",
        "effects": {"limits": {"max_tokens": 1024}, "tags": {"team": team}},
        "input": {
            "principal": {"key_id": key, "team": team, "user": "u", "roles": []},
            "endpoint": "chat.completions",
            "model": model,
            "messages": 3,
            "tools": ["lookup_order", "issue_refund"],
            "tool_results": 1,
            "pii": {"EMAIL_ADDRESS": 1},
            "cost": {"estimate_usd": 0.01, "remaining_usd": {"key": 4.2}},
            "run": {"calls": 3, "spend_usd": 0.02, "repeats": 0},
            "time": iso_time(ts),
        },
    }
    return {
        "v": 1,
        "id": new_event_id(ts),
        "kind": KIND_CALL,
        "ts": ts,
        "time": iso_time(ts),
        "request_id": f"req_{uuid.uuid4().hex}",
        "trace_id": None,
        "principal": {"key_id": key, "team": team, "user": "u"},
        "agent": {"id": agent, "run_id": run, "parent_run_id": None},
        "endpoint": "chat.completions",
        "stream": False,
        "model": {"requested": model, "used": model, "routed": None, "deployment": f"{model}#0"},
        "decision": "deny" if denied else "allow",
        "decisions": [
            {
                "stage": "redact_in",
                "phase": "request",
                "outcome": "allow",
                "reasons": ["redacted 1 EMAIL_ADDRESS"],
                "revision": None,
            },
            {
                "stage": "policy_request",
                "phase": "request",
                "outcome": "deny" if denied else "allow",
                "reasons": ["tool 'shell' is not allowed for this caller"] if denied else [],
                "revision": "a51f1cd92c7a",
                "why": why,
            },
        ],
        "redaction": {"entities": {"EMAIL_ADDRESS": 1}, "locations": [], "unscanned": 0},
        "approval": None,
        "tool_calls": [] if denied else [{"id": f"call_{uuid.uuid4().hex[:12]}", "name": "lookup_order"}],
        "finish_reason": None if denied else "tool_calls",
        "usage": None if denied else {"input_tokens": 400, "output_tokens": 60, "cached_tokens": 0},
        "cost": {
            "settled_usd": cost,
            "settled_nusd": usd_to_nano(cost),
            "reserved_usd": 0.05,
            "basis": "usage",
        },
        "latency_ms": {"total": 120.0, "stages": {"authenticate": 0.02, "redact_in": 0.5, "forward": 110.0}},
        "upstream": {
            "status": None if denied else 200,
            "retries": 0,
            "attempts": 0 if denied else 1,
            "tried": [],
        },
        "status": 403 if denied else 200,
        "error": None,
        "client_disconnected": False,
    }


async def fill(schema: str, n: int) -> None:
    """``n`` call events (200 of them in ``BIG_RUN``, with captures) sealed into one chain."""
    rng = random.Random(22)
    store = PostgresStore(PG_DSN, schema, pool_size=2)
    await store.open()
    chain = ShardChain(new_shard_id("bench-fill"))
    now = time.time()
    keys = [(f"key-{i}", TEAMS[i % len(TEAMS)]) for i in range(50)]
    agents = [f"agent-{i}" for i in range(30)]
    events = []
    for _ in range(n - 200):
        key, team = rng.choice(keys)
        run = f"run-{rng.randrange(2500)}"
        events.append(_event(rng, now - rng.uniform(0, 30 * DAY), run, rng.choice(agents), team, key))
    start = now - 3600
    big = [_event(rng, start + i * 10.0, BIG_RUN, agents[i % 3], "team-0", "key-0") for i in range(200)]
    captures = []
    for ev in big:
        body = canonical_json(
            {
                "v": 1,
                "event_id": ev["id"],
                "request_id": ev["request_id"],
                "endpoint": "chat.completions",
                "request": {
                    "messages": [{"role": "user", "content": "Refund order 77 for <EMAIL_ADDRESS_1>"}]
                },
                "answer": {"content": "Looking it up.", "tool_calls": [], "finish_reason": "stop"},
            }
        )
        digest = hashlib.sha256(body).hexdigest()
        ev["capture"] = {"hash": digest, "bytes": len(body)}
        captures.append((ev["id"], ev["ts"], BIG_RUN, digest, body.decode()))
    events += big
    events.sort(key=lambda e: e["ts"])
    for i in range(0, len(events), 2000):
        batch = chain.seal(events[i : i + 2000])
        await store.append(chain.shard, batch.rows, batch.head)
        chain.advance(batch.head)
    for row in captures:
        await store.put_capture(*row)
    await store.close()
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'VACUUM ANALYZE "{schema}".audit_events')
    finally:
        await conn.close()


def _sign_in(url: str) -> httpx.Client:
    client = httpx.Client(base_url=url, timeout=30)
    form = client.get("/console/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token, "no sign-in form"
    done = client.post(
        "/console/login",
        data={"key": ADMIN_KEY, "csrf_token": token.group(1), "next": "/console/"},
        headers={"origin": url},
    )
    assert done.status_code == 303, done.text[:300]
    return client


def _time(client: httpx.Client, path: str, n: int) -> tuple[float, float]:
    for _ in range(5):  # warm-up: templates compiled, pool connections open, plans cached
        assert client.get(path).status_code == 200, path
    wall = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path)
        wall.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (path, r.status_code)
    wall.sort()
    return statistics.median(wall), wall[min(len(wall) - 1, int(len(wall) * 0.99))]


async def _drop(schema: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    schema = f"bench_console_{uuid.uuid4().hex[:10]}"
    t0 = time.perf_counter()
    asyncio.run(fill(schema, args.events))
    print(f"filled {args.events} events in {time.perf_counter() - t0:.1f} s (schema {schema})")
    config = {
        "audit": {"enabled": True, "backend": "postgres", "postgres_dsn": PG_DSN, "postgres_schema": schema},
        "console": {"enabled": True},
    }
    try:
        with gateway("http://127.0.0.1:9", config) as gw:
            client = _sign_in(gw.url.removesuffix("/v1"))
            pages = [
                f"/console/runs/{BIG_RUN}",
                "/console/spend",
                "/console/spend?window=30d",
                "/console/runs",
                "/console/audit",
            ]
            print(f"{'page':40} {'p50 ms':>8} {'p99 ms':>8}")
            for path in pages:
                p50, p99 = _time(client, path, args.requests)
                print(f"{path:40} {p50:8.1f} {p99:8.1f}")
            client.close()
    finally:
        asyncio.run(_drop(schema))


if __name__ == "__main__":
    main()
