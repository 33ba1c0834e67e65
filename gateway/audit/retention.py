"""Retention that keeps the rest of the log verifiable.

Pruning deletes a prefix of each chain. Where a chain now starts is kept as an *anchor*
(first kept ``seq`` and that event's ``prev_hash``), and before anything is deleted a
``retention`` event listing every anchor is sealed into this process's own chain. ``verify``
then accepts a chain starting at its anchor only if a retention event in an intact chain
attests that anchor, so an anchor forged to hide deleted events is itself a break.

The retention event is the prune's own record, and verifiable like any event: ``pruned``
names, per chain, the seq range deleted and the chain's head (seq, hash) just before, and
those heads are also ``witness``ed, so ``verify`` checks they are still there (or below a
later anchor). On PostgreSQL retention runs as its own role (``wardgate audit prune``): the
gateway's role may not delete (see ``store/pg_guard.py``).

Order matters: attest first, delete second. A crash in between leaves an attested anchor
that was never applied, which is harmless; the reverse would leave an unattested one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gateway.audit.events import base_event
from gateway.audit.schema import KIND_RETENTION, iso_time
from gateway.audit.store.base import AuditStore


async def prune(
    store: AuditStore, cutoff_ts: float, submit: Callable[[dict[str, Any]], Awaitable[None]]
) -> int:
    """Delete events before ``cutoff_ts``; return how many were deleted."""
    plan = await store.plan_prune(cutoff_ts)
    if not plan:
        return 0
    current = await store.anchors()
    # Never move an anchor backwards (another replica may have pruned further already).
    plan = {s: a for s, a in plan.items() if s not in current or a.seq > current[s].seq}
    if not plan:
        return 0
    anchors = {**current, **plan}
    heads = await store.heads(0.0)
    pruned = {
        s: {"from_seq": current[s].seq if s in current else 1, "to_seq": a.seq - 1}
        | ({"head": {"seq": heads[s].seq, "hash": heads[s].hash}} if s in heads else {})
        for s, a in sorted(plan.items())
    }
    event = base_event(KIND_RETENTION) | {
        "data": {
            "cutoff": iso_time(cutoff_ts),
            "anchors": {s: {"seq": a.seq, "prev_hash": a.prev_hash} for s, a in sorted(anchors.items())},
            "pruned_shards": sorted(plan),
            "pruned": pruned,
            "witness": {s: p["head"] for s, p in pruned.items() if "head" in p},
        }
    }
    await submit(event)
    return await store.apply_prune(plan)
