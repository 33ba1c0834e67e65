"""Streamed exports (JSONL and CSV) in bounded memory, however many events match.

An export reads ONE snapshot of the store (a REPEATABLE READ transaction on PostgreSQL, one
read transaction on SQLite) in commit order, chain by chain and ``seq`` by ``seq``, a page at
a time: each page is encoded and handed to the response before the next is fetched, so memory
stays at one page whatever the export's size, and a call that commits while the export runs
is either wholly in it (with everything before it) or not at all.

A JSONL export not narrowed by content filters (only ``chain`` / ``since_seq``) is a set of
contiguous chain *segments* and says so: a first line ``{"export": {...}}`` (its scope) and,
after each chain's events, ``{"segment": {shard, from_seq, prev_hash, to_seq, hash}}``. So it
verifies on its own (``verify --file``): a segment may start after seq 1 at the ``prev_hash``
it names (an incremental archive from ``since_seq``: the previous archive must end there),
and must end at the ``to_seq``/``hash`` it names (a truncated file is caught).

The CSV is opened in spreadsheets, and many of its cells hold text an agent or a model
chose (ids, reasons quoting tool names, model names). A cell a spreadsheet would read as a
formula (it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return: OWASP's CSV
injection rule, plus the fullwidth forms some locales also evaluate) is prefixed with ``'``,
so it shows as text. Numbers stay numbers: only string cells are touched.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from gateway.audit.schema import iso_time
from gateway.audit.store.base import AuditStore, Filters, event_of

PAGE = 1000

CSV_COLUMNS: tuple[str, ...] = (
    "id",
    "time",
    "kind",
    "shard",
    "seq",
    "request_id",
    "trace_id",
    "team",
    "key_id",
    "user",
    "agent_id",
    "run_id",
    "parent_run_id",
    "endpoint",
    "stream",
    "model",
    "model_used",
    "deployment",
    "decision",
    "reasons",
    "status",
    "error_code",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "reserved_usd",
    "latency_ms",
    "retries",
    "redacted",
    "approval_id",
    "approval_status",
    "prev_hash",
    "hash",
    "upstream_status",
    "attempts",
    "deployments_tried",
)


#: What makes a spreadsheet evaluate a cell (OWASP CSV injection), and fullwidth look-alikes.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def neutralise(cell: Any) -> Any:
    """A string cell a spreadsheet would run as a formula, made inert with a leading ``'``.

    Leading whitespace is looked through: an importer that trims cells (LibreOffice can)
    would otherwise turn `` =1+1`` back into a formula."""
    if isinstance(cell, str) and (
        cell.startswith(_FORMULA_STARTS) or cell.lstrip().startswith(_FORMULA_STARTS)
    ):
        return "'" + cell
    return cell


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
    return [neutralise(cell) for cell in _cells(ev, reasons, entities)]


def _cells(ev: dict[str, Any], reasons: list[Any], entities: dict[str, Any]) -> list[Any]:
    return [
        ev.get("id"),
        ev.get("time"),
        ev.get("kind"),
        ev.get("shard"),
        ev.get("seq"),
        ev.get("request_id"),
        ev.get("trace_id"),
        _get(ev, "principal", "team"),
        _get(ev, "principal", "key_id"),
        _get(ev, "principal", "user"),
        _get(ev, "agent", "id"),
        _get(ev, "agent", "run_id"),
        _get(ev, "agent", "parent_run_id"),
        ev.get("endpoint"),
        ev.get("stream"),
        _get(ev, "model", "requested"),
        _get(ev, "model", "used"),
        _get(ev, "model", "deployment"),
        ev.get("decision"),
        "; ".join(reasons),
        ev.get("status"),
        _get(ev, "error", "code"),
        _get(ev, "usage", "input_tokens"),
        _get(ev, "usage", "output_tokens"),
        _get(ev, "cost", "settled_usd"),
        _get(ev, "cost", "reserved_usd"),
        _get(ev, "latency_ms", "total"),
        _get(ev, "upstream", "retries"),
        ";".join(f"{k}={v}" for k, v in sorted(entities.items())),
        _get(ev, "approval", "id"),
        _get(ev, "approval", "status"),
        ev.get("prev_hash"),
        ev.get("hash"),
        _get(ev, "upstream", "status"),
        _get(ev, "upstream", "attempts"),
        ";".join(
            str(t.get("deployment")) for t in _get(ev, "upstream", "tried") or () if isinstance(t, dict)
        ),
    ]


async def iter_pages(
    store: AuditStore,
    filters: Filters,
    page: int = PAGE,
    *,
    chain: str | None = None,
    since_seq: int | None = None,
) -> AsyncIterator[list[dict[str, Any]]]:
    """One snapshot, in commit order, one page at a time."""
    async for rows in store.snapshot(filters, chain, since_seq, page):
        yield [event_of(body, hash_) for _, _, _, hash_, body in rows]


def _line(key: str, value: dict[str, Any]) -> str:
    return orjson.dumps({key: value}).decode() + "\n"


async def jsonl(
    store: AuditStore,
    filters: Filters,
    page: int = PAGE,
    *,
    chain: str | None = None,
    since_seq: int | None = None,
    now: float | None = None,
    count: list[int] | None = None,
) -> AsyncIterator[bytes]:
    """The stored canonical body with its hash spliced in: no parse, no re-encode per event;
    plus the scope and segment lines of an export that covers whole segments."""
    segments = not filters.active()
    if segments:
        scope = {
            "chain": chain,
            "since_seq": since_seq,
            "time": iso_time(time.time() if now is None else now),
        }
        yield _line("export", scope).encode()
    seg: dict[str, Any] | None = None
    async for rows in store.snapshot(filters, chain, since_seq, page):
        if count is not None:
            count[0] += len(rows)
        out = []
        for shard, seq, prev, hash_, body in rows:
            if segments:
                if seg is None or seg["shard"] != shard:
                    if seg is not None:
                        out.append(_line("segment", seg))
                    seg = {"shard": shard, "from_seq": seq, "prev_hash": prev, "to_seq": seq, "hash": hash_}
                else:
                    seg["to_seq"], seg["hash"] = seq, hash_
            out.append(f'{body[:-1]},"hash":"{hash_}"}}\n')
        yield "".join(out).encode()
    if seg is not None:
        yield _line("segment", seg).encode()


async def csv_lines(
    store: AuditStore,
    filters: Filters,
    *,
    chain: str | None = None,
    since_seq: int | None = None,
    count: list[int] | None = None,
) -> AsyncIterator[bytes]:
    """``count[0]`` (when given) is raised by the rows read, for the read's own audit event."""
    buf = io.StringIO()
    # RFC 4180's CRLF: the writer then quotes a cell holding a lone CR too (with "\n" it did
    # not, and a CR in a model name started a forged row in every spreadsheet).
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    yield buf.getvalue().encode()
    async for events in iter_pages(store, filters, chain=chain, since_seq=since_seq):
        if count is not None:
            count[0] += len(events)
        buf.seek(0)
        buf.truncate()
        writer.writerows(csv_row(ev) for ev in events)
        yield buf.getvalue().encode()
