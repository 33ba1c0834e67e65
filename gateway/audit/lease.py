"""Chain leases: each chain is judged dead by the lease it declared, not by the judge's own.

A live chain renews its head row's ``ts`` every third of its ``audit.chain_lease_s`` and
declares that lease in its ``chain_open`` (``data.lease_s``). A process sweeping for dead chains
with a short lease (0.3 s) must not name a chain with a longer one (2 s) abandoned between that
chain's renewals: a 2 s lease renews every 0.67 s, so by the short lease it looks dead most of
the time. So a candidate (stale by the sweeper's lease) is named only once it is stale by its
own. Chains from before the declaration are judged by the sweeper's lease, as they were.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateway.audit.store.base import AuditStore


async def declared_lease(store: AuditStore, shard: str, default: float) -> float:
    """The lease ``shard`` declared in its ``chain_open``; ``default`` when it declared none."""
    d = store.dialect
    rows = await store.select(
        f"SELECT body FROM audit_events WHERE shard = {d.ph(1, 'text')} AND seq = 1", [shard]
    )
    data: Any = orjson.loads(rows[0][0]).get("data") if rows else None
    lease = data.get("lease_s") if isinstance(data, dict) else None
    if isinstance(lease, int | float) and not isinstance(lease, bool) and lease > 0:
        return float(lease)
    return default
