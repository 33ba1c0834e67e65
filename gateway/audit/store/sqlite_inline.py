"""SQLite read right in the calling thread, for ``verify`` run inline (the CLI, a worker thread).

The store's reads normally go to a reader thread, so that an event loop never blocks on them.
A verification that owns its thread gains nothing from that hop and pays for it: the reader
thread and the checking thread take turns on the GIL, each switch a cost of its own (the
process's CPU was ~2x the checking thread's). Here one statement (one read transaction: a
consistent snapshot of the chain) is paged with ``fetchmany`` in the thread that checks, rows
in ``iter_pages``' layout (``ROW_COLUMNS``, the body as a BLOB: the bytes hashed, no decode).
Measured and dropped: packing the columns into one SQLite ``json_array`` per row (fewer Python
objects) cost as much in SQLite as it saved in Python.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gateway.audit.schema import ROW_COLUMNS

_PAGE = 20_000
_SQL = (
    f"SELECT {', '.join(ROW_COLUMNS[:-1])}, CAST(body AS BLOB) FROM audit_events WHERE shard = ? ORDER BY seq"
)


class InlineReader:
    """A read-only connection used from whichever thread calls it (one at a time)."""

    def __init__(self, path: Path) -> None:
        uri = Path(path).resolve().as_uri() + "?mode=ro"
        self.db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=10.0)

    def pages(self, shard: str) -> Iterator[list[tuple[Any, ...]]]:
        cur = self.db.execute(_SQL, (shard,))
        try:
            while rows := cur.fetchmany(_PAGE):
                yield rows
        finally:
            cur.close()

    def close(self) -> None:
        self.db.close()
