"""Console pages over a big audit log (issue 22): server time of the approvals inbox with
1,000 pending approvals, a 200-call run timeline and the spend page with 100,000 audit events in
PostgreSQL, and the time from an approval's creation to its appearance in an open inbox.

    .venv/bin/python -m bench.console_data [--events 100000] [--pending 1000] [--requests 200]
                                           [--arrivals 100] [--redis-url redis://127.0.0.1:6379/0]

It fills a fresh PostgreSQL schema with call events shaped like the gateway's (10 teams, 50
keys, 30 agents, 5 models, ~2,500 runs over 30 days, decisions with their "why", a tenth of
them denied), sealed into one hash chain, plus one run of 200 calls with content captures.
Then a gateway process (one worker, pinned to core 0) serves the console on that schema, with
the approval queue on Redis (the production backend; ``--pending`` approvals written straight
into it, as another replica would), and a signed-in client times, sequentially after a warm-up:

- ``/console/approvals``: the inbox (the newest 100 of the pending approvals, filters);
- ``/console/runs/run-bench-200``: the run page of the 200-call run (tree, timeline; the why
  and capture panels load on demand: ``/console/why/{id}``, ``/console/capture/{id}`` timed too);
- ``/console/spend`` (per team, 7 days: the page's default), ``?window=30d`` and
  ``?window=30d&group_by=key``; the first read also folds the 100,000 events into the spend
  rollup once (``fold`` line), as the first read after an upgrade does;
- ``/console/runs`` (runs active within 7 days) and ``/console/audit`` (first page);
- creation to appearance: an open inbox (the SSE stream and a rows fetch per event, what the
  page does) while ``--arrivals`` approvals are created one at a time (``bench/console.py``).

Reported per page: p50 / p99 of the server time (the page's ``Server-Timing``: ``page`` is the
wall time in the handler, ``cpu`` the worker thread's CPU time, which a busy machine does not
inflate) and of the client's round trip, each against the issue's target: server time p50 <=
50 ms and p99 <= 200 ms for the inbox, the run timeline and the spend page; creation to
appearance p99 <= 1 s. The schema and the Redis keys are removed at the end. Wall times are
only meaningful on a quiet machine.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import re
import time
import uuid
from typing import Any

import asyncpg
import httpx

from bench.common import gateway
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


def _time(client: httpx.Client, path: str, n: int) -> dict[str, list[float]]:
    """Server wall, server CPU and round trip (ms) of ``n`` sequential GETs after a warm-up."""
    from bench.console import _TIMING

    for _ in range(5):  # warm-up: templates compiled, pool connections open, plans cached
        assert client.get(path).status_code == 200, path
    out: dict[str, list[float]] = {"server": [], "cpu": [], "trip": []}
    for _ in range(n):
        t0 = time.perf_counter()
        r = client.get(path)
        out["trip"].append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, (path, r.status_code)
        timing = dict(_TIMING.findall(r.headers["server-timing"]))
        out["server"].append(float(timing["page"]))
        out["cpu"].append(float(timing["cpu"]))
    return out


def _verdict(p50: float, p99: float, target: tuple[float, float] | None) -> str:
    if target is None:
        return ""
    ok = p50 <= target[0] and p99 <= target[1]
    return f"  {'meets' if ok else 'MISSES'} p50 <= {target[0]:.0f}, p99 <= {target[1]:.0f}"


async def _drop(schema: str) -> None:
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


#: Server-time target of the issue's pages (p50, p99 ms); None: shown, no target.
TARGET = (50.0, 200.0)


def main() -> None:
    import os

    from cryptography.fernet import Fernet

    from bench.console import arrivals, pct, seed, sign_in

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--pending", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--arrivals", type=int, default=100)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args()
    schema = f"bench_console_{uuid.uuid4().hex[:10]}"
    prefix = f"wgbench-console-{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("WARDGATE_APPROVALS_KEY", Fernet.generate_key().decode())
    t0 = time.perf_counter()
    asyncio.run(fill(schema, args.events))
    print(f"filled {args.events} events in {time.perf_counter() - t0:.1f} s (schema {schema})")
    config = {
        "audit": {"enabled": True, "backend": "postgres", "postgres_dsn": PG_DSN, "postgres_schema": schema},
        "approvals": {"enabled": True, "backend": "redis", "redis_url": args.redis_url, "key_prefix": prefix},
        "console": {"enabled": True},
    }
    try:
        with gateway("http://127.0.0.1:9", config) as gw:
            url = gw.url.removesuffix("/v1")
            asyncio.run(seed(args.redis_url, prefix, args.pending))
            client = sign_in(url)
            started = time.perf_counter()
            assert client.get("/console/spend", timeout=900).status_code == 200
            print(
                f"fold: first spend read (folds {args.events} events into the rollup) "
                f"{(time.perf_counter() - started) * 1000:.0f} ms"
            )
            run_page = client.get(f"/console/runs/{BIG_RUN}").text
            why = re.search(r'hx-get="(/console/why/[^"]+)"', run_page)
            capture = re.search(r'hx-get="(/console/capture/[^"]+)"', run_page)
            assert why and capture, "the run page has no why or capture panel"
            pages: list[tuple[str, str, tuple[float, float] | None]] = [
                ("inbox", "/console/approvals", TARGET),
                ("run timeline (200 calls)", f"/console/runs/{BIG_RUN}", TARGET),
                ("spend (team, 7d: default)", "/console/spend", TARGET),
                ("spend (team, 30d)", "/console/spend?window=30d", TARGET),
                ("spend (key, 30d)", "/console/spend?window=30d&group_by=key", TARGET),
                ("why panel (on demand)", why.group(1).replace("&amp;", "&"), None),
                ("capture panel (on demand)", capture.group(1), None),
                ("run search (7d)", "/console/runs", None),
                ("audit (first page)", "/console/audit", None),
            ]
            print(
                f"{args.events} audit events in PostgreSQL, {args.pending} pending approvals on Redis; "
                f"{args.requests} sequential requests per page; ms"
            )
            print(
                f"{'page':28} {'server p50':>10} {'p99':>7} {'cpu p50':>8} {'p99':>7} {'trip p50':>9} {'p99':>7}"
            )
            for name, path, target in pages:
                t = _time(client, path, args.requests)
                s50, s99 = pct(t["server"], 50), pct(t["server"], 99)
                print(
                    f"{name:28} {s50:10.1f} {s99:7.1f} {pct(t['cpu'], 50):8.1f} {pct(t['cpu'], 99):7.1f} "
                    f"{pct(t['trip'], 50):9.1f} {pct(t['trip'], 99):7.1f}{_verdict(s50, s99, target)}"
                )
            seconds = [s * 1000 for s in arrivals(url, client, args.redis_url, prefix, args.arrivals)]
            a50, a99 = pct(seconds, 50), pct(seconds, 99)
            print(
                f"{'creation -> open inbox':28} p50 {a50:.1f} ms, p99 {a99:.1f} ms"
                f"  {'meets' if a99 <= 1000 else 'MISSES'} p99 <= 1000 ms (n={len(seconds)})"
            )
            client.close()
    finally:
        asyncio.run(_drop(schema))
        import redis as redis_sync

        r = redis_sync.Redis.from_url(args.redis_url)
        keys = list(r.scan_iter(match="{" + prefix + ":*", count=1000))
        if keys:
            r.delete(*keys)
        r.close()


if __name__ == "__main__":
    main()
