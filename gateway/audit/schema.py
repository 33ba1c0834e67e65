"""The audit event format: version, canonical JSON, chain hash, ids and index columns.

An event is a JSON object. Stores keep its canonical JSON (``body``: sorted keys, compact,
UTF-8, without ``hash``) byte for byte, and ``hash = sha256(body + prev_hash)``. Keeping the
exact bytes that were hashed (rather than a re-encoded JSONB value) is what lets ``verify``
recompute every hash on any store without worrying about number or key-order normalisation.

Index columns are *derived* from the body by ``index_columns``; ``verify`` derives them again
and compares, so editing a column that queries filter on is caught like editing the body.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

import orjson

#: Bump when the event shape changes incompatibly; readers branch on ``event["v"]``.
SCHEMA_VERSION = 1
GENESIS_HASH = "0" * 64

#: Event kinds. ``call`` is one per proxied call; the rest come from ``record(kind, ...)``
#: (``approval``, ``admin``, ``policy``...) or from the chain itself.
KIND_CALL = "call"
KIND_CHECKPOINT = "checkpoint"
KIND_CHAIN_OPEN = "chain_open"
KIND_CHAIN_CLOSE = "chain_close"
KIND_RETENTION = "retention"
#: Written by a live chain about a dead one (no ``chain_close``, lease expired): names the dead
#: chain and the head it had, so ``verify`` can flag anything appended to it afterwards.
KIND_CHAIN_ABANDONED = "chain_abandoned"
CHAIN_KINDS = frozenset(
    {KIND_CHECKPOINT, KIND_CHAIN_OPEN, KIND_CHAIN_CLOSE, KIND_RETENTION, KIND_CHAIN_ABANDONED}
)

#: Column order of the events table (after id, shard, seq, ts); see ``index_columns``.
INDEX_COLUMNS: tuple[str, ...] = (
    "kind",
    "request_id",
    "team",
    "key_id",
    "agent_id",
    "run_id",
    "model",
    "model_used",
    "decision",
    "status",
    "input_tokens",
    "output_tokens",
    "cost_nusd",
)

NANO = 1_000_000_000


def canonical_json(event: dict[str, Any]) -> bytes:
    """Sorted keys, no whitespace, UTF-8; anything not JSON-native becomes its ``str``."""
    return orjson.dumps(event, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=str)


def chain_hash(body: bytes, prev_hash: str) -> str:
    return hashlib.sha256(body + prev_hash.encode("ascii")).hexdigest()


def new_event_id(now: float | None = None) -> str:
    """Time-ordered id: 12 hex digits of milliseconds, then 80 random bits."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"ev_{ms:012x}{os.urandom(10).hex()}"


def iso_time(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def usd_to_nano(usd: object) -> int | None:
    """Costs are summed as integer nano-dollars so a report adds up exactly."""
    if not isinstance(usd, int | float) or isinstance(usd, bool) or usd != usd:
        return None
    return round(float(usd) * NANO)


_NO_SECTION: Mapping[str, Any] = MappingProxyType({})


def _section(event: dict[str, Any], key: str) -> Mapping[str, Any]:
    value = event.get(key)
    return value if isinstance(value, dict) else _NO_SECTION


def index_columns(event: dict[str, Any]) -> tuple[Any, ...]:
    """The queryable columns of an event, in ``INDEX_COLUMNS`` order.

    Called for every event sealed and every event verified, so the sections are looked up
    inline (no helper call per section): ~40% of its time was those calls."""
    get = event.get
    principal, agent, model, usage, cost = (
        get("principal"),
        get("agent"),
        get("model"),
        get("usage"),
        get("cost"),
    )
    if not isinstance(principal, dict):
        principal = _NO_SECTION
    if not isinstance(agent, dict):
        agent = _NO_SECTION
    if not isinstance(model, dict):
        model = _NO_SECTION
    if not isinstance(usage, dict):
        usage = _NO_SECTION
    if not isinstance(cost, dict):
        cost = _NO_SECTION
    return (
        get("kind"),
        get("request_id"),
        principal.get("team"),
        principal.get("key_id"),
        agent.get("id"),
        agent.get("run_id"),
        model.get("requested"),
        model.get("used"),
        get("decision"),
        get("status"),
        usage.get("input_tokens"),
        usage.get("output_tokens"),
        cost.get("settled_nusd"),
    )


def row_of(event: dict[str, Any], body: bytes, hash_: str) -> tuple[Any, ...]:
    """One events-table row: id, shard, seq, ts, *index columns, prev_hash, hash, body."""
    return (
        event["id"],
        event["shard"],
        event["seq"],
        event["ts"],
        *index_columns(event),
        event["prev_hash"],
        hash_,
        body.decode("utf-8"),
    )


ROW_COLUMNS: tuple[str, ...] = ("id", "shard", "seq", "ts", *INDEX_COLUMNS, "prev_hash", "hash", "body")
