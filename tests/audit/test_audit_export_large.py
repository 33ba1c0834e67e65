"""Exporting 100,000 events streams in flat memory (through the real ASGI route)."""

from __future__ import annotations

import asyncio
import os
import time

import orjson
from audit_helpers import AUDITOR, build_app, make_call

from gateway.audit.chain import Head
from gateway.audit.events import build_call_event
from gateway.audit.schema import canonical_json, chain_hash, index_columns, iso_time

N = 100_000
BATCH = 10_000
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * _PAGE


def _body_format(shard: str) -> tuple[str, dict]:
    """A canonical body with format fields where the per-event values go (ids, seq, ts, links)."""
    ev = build_call_event(make_call())
    ev.update(
        id="@ID@",
        shard=shard,
        seq=1_234_567_890_123,
        ts=9_876_543.21,
        time="@TIME@",
        request_id="@REQ@",
        prev_hash="@PREV@",
    )
    text = canonical_json(ev).decode().replace("{", "{{").replace("}", "}}")
    for old, new in (
        ('"@ID@"', '"{id}"'),
        ("1234567890123", "{seq}"),
        ("9876543.21", "{ts!r}"),
        ('"@TIME@"', '"{time}"'),
        ('"@REQ@"', '"{req}"'),
        ('"@PREV@"', '"{prev}"'),
    ):
        text = text.replace(old, new)
    return text, ev


async def _bulk_fill(service, n: int) -> None:
    """Append n sealed call events straight into the store: a valid chain, built fast."""
    fmt, template = _body_format(service.shard)
    cols = index_columns(template)
    head = service.chain.head
    t0 = time.time() - n / 1000
    for start in range(0, n, BATCH):
        rows, seq, prev = [], head.seq, head.hash
        for i in range(start, min(n, start + BATCH)):
            seq += 1
            ts = t0 + i / 1000
            ev_id, req = f"ev_{int(ts * 1000):012x}{i:020x}", f"req_{i:06d}"
            body = fmt.format(id=ev_id, seq=seq, ts=ts, time=iso_time(ts), req=req, prev=prev)
            h = chain_hash(body.encode(), prev)
            rows.append((ev_id, service.shard, seq, ts, cols[0], req, *cols[2:], prev, h, body))
            prev = h
        assert canonical_json(orjson.loads(rows[0][-1])).decode() == rows[0][-1]  # the template is canonical
        head = Head(seq, prev)
        await service.store.append(service.shard, rows, head)
        service.chain.advance(head)


async def _stream_export(app, query: bytes) -> tuple[int, int, int, int]:
    """Drive the ASGI app directly so nothing buffers the body: (status, bytes, lines, RSS growth)."""
    seen = {"status": 0, "bytes": 0, "lines": 0, "rss": 0}
    requested, never = asyncio.Event(), asyncio.Event()
    base = _rss()

    async def receive():
        if not requested.is_set():
            requested.set()
            return {"type": "http.request", "body": b"", "more_body": False}
        await never.wait()  # the client stays connected; it never sends a disconnect

    async def send(message):
        if message["type"] == "http.response.start":
            seen["status"] = message["status"]
        elif message["type"] == "http.response.body":
            body = message.get("body", b"")
            seen["bytes"] += len(body)
            seen["lines"] += body.count(b"\n")
            seen["rss"] = max(seen["rss"], _rss() - base)

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "path": "/admin/audit/export",
        "raw_path": b"/admin/audit/export",
        "query_string": query,
        "root_path": "",
        "scheme": "http",
        "server": ("gw", 80),
        "client": ("127.0.0.1", 1),
        "headers": [(b"authorization", f"Bearer {AUDITOR}".encode()), (b"host", b"gw")],
    }
    await app(scope, receive, send)
    return seen["status"], seen["bytes"], seen["lines"], seen["rss"]


async def test_export_of_100k_events_streams_with_flat_memory(make_service):
    service = await make_service()
    await _bulk_fill(service, N)
    status, size, lines, rss_growth = await _stream_export(build_app(service), b"format=jsonl&kind=call")
    assert status == 200 and lines == N
    assert size > 100_000_000  # the export is large...
    assert rss_growth < 40_000_000, f"RSS grew {rss_growth / 1e6:.1f} MB"  # ...memory stays at about a page
