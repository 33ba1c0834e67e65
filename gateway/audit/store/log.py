"""The ``log`` backend: one JSON line per event, nothing to query.

Events are still sealed into a hash chain, and each line is the event's canonical body with
its ``hash`` added, so a shipped log verifies offline with ``wardgate audit verify --file``.

The lines do not go through ``logging``: an audit record that the operator's log level, a
``dictConfig`` or a logger's ``propagate`` could silently drop is no record (with
``server.log_level: warning`` the old INFO lines vanished while calls were answered 200).
``EventLines`` writes to its own destination, ``audit.log_path`` (appended) or stderr, and a
failed write fails the commit like a failed database write would (the call gets a 503 when
``audit.fail_closed``). The same writer serves ``audit.log_events`` beside a database store.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gateway.audit.chain import Head
from gateway.audit.store.base import AuditStore


def event_line(row: Sequence[Any]) -> str:
    """A sealed row as one JSONL line: the canonical body with ``"hash"`` appended."""
    body, hash_ = row[-1], row[-2]
    return f'{body[:-1]},"hash":"{hash_}"}}\n'


class EventLines:
    """Appends event lines to ``path`` (``O_APPEND``, one ``write`` per batch) or to stderr."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._fd: int | None = None

    def open(self) -> None:
        if self.path is not None and self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)

    def write(self, rows: Sequence[Sequence[Any]]) -> None:
        data = "".join(event_line(row) for row in rows)
        if self.path is None:
            # Looked up on every write: whatever stderr is now (a test's capture, a redirect).
            sys.stderr.write(data)
            sys.stderr.flush()
            return
        if self._fd is None:
            raise RuntimeError("audit event log is not open")
        raw = data.encode("utf-8")
        while raw:  # a short write (a full disk, a signal) must not drop the rest silently
            raw = raw[os.write(self._fd, raw) :]

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class LogStore(AuditStore):
    name = "log"
    queryable = False

    def __init__(self, path: Path | None = None) -> None:
        self.lines = EventLines(path)

    async def open(self) -> None:
        self.lines.open()

    async def close(self) -> None:
        self.lines.close()

    async def ping(self) -> None:
        return None

    async def append(self, shard: str, rows: list[tuple[Any, ...]], head: Head) -> None:
        self.lines.write(rows)
