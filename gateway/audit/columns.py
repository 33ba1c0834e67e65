"""``verify``: the stored columns of a row against the event sealed in its body.

The queryable columns (``ROW_COLUMNS``) are copies of values in the sealed body; a column
edited on its own (the body and its hash left alone) misleads every query that filters on it,
so ``verify`` compares them all, per row: one tuple comparison in its hot loop for a row that
is intact, and ``column_problem`` (which column differs) only for one that is not.
"""

from __future__ import annotations

from typing import Any

from gateway.audit.schema import INDEX_COLUMNS, index_columns
from gateway.audit.store.base import StoredRow


def column_problem(row: StoredRow, ev: dict[str, Any]) -> str | None:
    if ev.get("seq") != row.seq:
        return f"reordered: the row at seq {row.seq} holds the event sealed as seq {ev.get('seq')}"
    if ev.get("id") != row.id or ev.get("shard") != row.shard:
        return "edited: id/shard columns differ from the sealed event"
    if ev.get("ts") != row.ts:
        return "edited: ts column differs from the sealed event"
    if ev.get("prev_hash") != row.prev_hash:
        return "edited: prev_hash column differs from the sealed event"
    for name, stored, sealed in zip(INDEX_COLUMNS, row.columns, index_columns(ev), strict=True):
        if stored != sealed:
            return f"edited: column {name} differs from the sealed event"
    return None
