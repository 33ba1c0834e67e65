"""Streamed exports (JSONL and CSV) in bounded memory, however many events match.

Events are read a page at a time with keyset paging (no long-lived cursor or transaction
held open while a slow client reads) and each page is encoded and handed to the response
before the next is read, so memory stays at one page whatever the export's size.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

from gateway.audit.store.base import AuditStore, Filters

PAGE = 1000

CSV_COLUMNS: tuple[str, ...] = (
    "id", "time", "kind", "shard", "seq", "request_id", "trace_id", "team", "key_id", "user", "agent_id",
    "run_id", "parent_run_id", "endpoint", "stream", "model", "model_used", "deployment", "decision",
    "reasons", "status", "error_code", "input_tokens", "output_tokens", "cost_usd", "reserved_usd",
    "latency_ms", "retries", "redacted", "approval_id", "approval_status", "prev_hash", "hash",
)


def _get(d: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(d, dict):
            return None
        d = d.get(key)
    return d


def csv_row(ev: dict[str, Any]) -> list[Any]:
    """A flat view of an event; the JSONL export keeps everything."""
    reasons = [r for d in ev.get("decisions") or () for r in d.get("reasons") or ()]
    entities = _get(ev, "redaction", "entities") or {}
    return [
        ev.get("id"), ev.get("time"), ev.get("kind"), ev.get("shard"), ev.get("seq"), ev.get("request_id"),
        ev.get("trace_id"), _get(ev, "principal", "team"), _get(ev, "principal", "key_id"),
        _get(ev, "principal", "user"), _get(ev, "agent", "id"), _get(ev, "agent", "run_id"),
        _get(ev, "agent", "parent_run_id"), ev.get("endpoint"), ev.get("stream"), _get(ev, "model", "requested"),
        _get(ev, "model", "used"), _get(ev, "model", "deployment"), ev.get("decision"), "; ".join(reasons),
        ev.get("status"), _get(ev, "error", "code"), _get(ev, "usage", "input_tokens"),
        _get(ev, "usage", "output_tokens"), _get(ev, "cost", "settled_usd"), _get(ev, "cost", "reserved_usd"),
        _get(ev, "latency_ms", "total"), _get(ev, "upstream", "retries"),
        ";".join(f"{k}={v}" for k, v in sorted(entities.items())), _get(ev, "approval", "id"),
        _get(ev, "approval", "status"), ev.get("prev_hash"), ev.get("hash"),
    ]


async def iter_pages(store: AuditStore, filters: Filters, page: int = PAGE) -> AsyncIterator[list[dict[str, Any]]]:
    """Oldest first, one page at a time."""
    after: tuple[float, str] | None = None
    while True:
        events = await store.query(filters, after=after, limit=page, desc=False)
        if events:
            yield events
        if len(events) < page:
            return
        after = (events[-1]["ts"], events[-1]["id"])


async def jsonl(store: AuditStore, filters: Filters, page: int = PAGE) -> AsyncIterator[bytes]:
    """The stored canonical body with its hash spliced in: no parse, no re-encode per event."""
    after: tuple[float, str] | None = None
    while True:
        rows = await store.query_raw(filters, after=after, limit=page, desc=False)
        if rows:
            yield "".join(f'{body[:-1]},"hash":"{hash_}"}}\n' for _, _, hash_, body in rows).encode()
        if len(rows) < page:
            return
        after = (rows[-1][0], rows[-1][1])


async def csv_lines(store: AuditStore, filters: Filters) -> AsyncIterator[bytes]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    yield buf.getvalue().encode()
    async for events in iter_pages(store, filters):
        buf.seek(0)
        buf.truncate()
        writer.writerows(csv_row(ev) for ev in events)
        yield buf.getvalue().encode()
