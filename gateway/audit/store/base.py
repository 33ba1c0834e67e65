"""The one interface every audit store implements (SQLite, PostgreSQL, log).

Writes arrive already sealed (see ``chain.py``) as rows in ``schema.ROW_COLUMNS`` order, a
batch at a time: ``append`` must make the whole batch and the shard's new head durable in one
transaction, or nothing. Reads are keyset-paged on ``(ts, id)`` so any result, however large,
is read in bounded memory.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, fields
from typing import Any

import orjson

from gateway.audit.chain import Head
from gateway.errors import ServiceUnavailable

#: ``group_by`` of the spend report → events-table column.
SPEND_GROUPS = {"team": "team", "key": "key_id", "agent": "agent_id", "model": "model", "run": "run_id"}


class QueryUnsupported(ServiceUnavailable):
    code = "audit_query_unsupported"


@dataclass(slots=True)
class Filters:
    since: float | None = None
    until: float | None = None
    team: str | None = None
    key_id: str | None = None
    agent_id: str | None = None
    run_id: str | None = None
    decision: str | None = None
    model: str | None = None
    kind: str | None = None
    request_id: str | None = None

    def active(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}


@dataclass(slots=True, frozen=True)
class Anchor:
    """Where a pruned chain now starts: its first kept ``seq`` and that event's ``prev_hash``."""

    seq: int
    prev_hash: str


@dataclass(slots=True, frozen=True)
class ChainInfo:
    """One chain of the registry (the heads table): its head, when it last moved or was
    renewed (the liveness lease), and the kind of its last event (``chain_close`` = closed)."""

    shard: str
    head: Head
    ts: float
    last_kind: str | None


@dataclass(slots=True)
class StoredRow:
    """One events-table row as ``verify`` needs it."""

    id: str
    shard: str
    seq: int
    ts: float
    columns: tuple[Any, ...]  # the index columns, in INDEX_COLUMNS order
    prev_hash: str
    hash: str
    body: str


def stored_row(r: tuple[Any, ...]) -> StoredRow:
    """A raw row (``ROW_COLUMNS`` order, as ``iter_pages`` yields it) as a ``StoredRow``."""
    body = r[-1]
    text = bytes(body).decode("utf-8") if isinstance(body, bytes | memoryview) else body
    return StoredRow(r[0], r[1], r[2], r[3], tuple(r[4:-3]), r[-3], r[-2], text)


def event_of(body: str | bytes, hash_: str) -> dict[str, Any]:
    ev = orjson.loads(body)
    ev["hash"] = hash_
    return ev


class AuditStore(ABC):
    name: str = "store"
    queryable: bool = True
    #: Whether ``append`` waits on I/O (a database server) rather than working on the event
    #: loop's thread: then events that arrive during a commit queue up for the next one even
    #: when the first event of a quiet spell is committed by its own caller (see the writer).
    append_awaits_io: bool = False

    @property
    def where(self) -> str:
        """The server this store talks to (``/readyz`` and logs name it), or its name."""
        return self.name

    def unreachable(self, exc: BaseException) -> bool:
        """Whether ``exc`` (from ``open``) says the server is down, not misconfigured: then the
        gateway starts not ready and keeps trying (``AuditService``) instead of refusing to start."""
        return False

    async def open(self) -> None:
        """Connect, create or migrate the schema."""
        return None

    async def close(self) -> None:
        """Release connections."""
        return None

    @abstractmethod
    async def ping(self) -> None:
        """Raise when the store cannot take writes."""

    @abstractmethod
    async def append(self, shard: str, rows: list[tuple[Any, ...]], head: Head) -> None:
        """Durably append a sealed batch and move the shard head, atomically."""

    # --- chain bookkeeping -------------------------------------------------------------
    async def head(self, shard: str) -> Head | None:
        return None

    async def heads(self, since_ts: float = 0.0) -> dict[str, Head]:
        """Heads of the chains that moved since ``since_ts`` (the witnesses of a checkpoint)."""
        return {}

    async def chains(self) -> list[ChainInfo]:
        """The chain registry: every chain with a head row (a store that cannot read: none)."""
        return []

    async def abandoned_marks(self) -> list[str]:
        """Bodies of the ``chain_abandoned`` events (which dead chains were already named)."""
        return []

    async def renew(self, shard: str) -> None:
        """Renew this chain's liveness lease (its head row's ``ts``) without writing an event."""
        return None

    async def shards(self) -> list[str]:
        raise QueryUnsupported(f"The {self.name} audit backend cannot be read back.")

    async def anchors(self) -> dict[str, Anchor]:
        return {}

    async def hash_at(self, shard: str, seq: int) -> str | None:
        """The stored hash of one chain position (``verify`` checks witnesses with it)."""
        raise QueryUnsupported(f"The {self.name} audit backend cannot be read back.")

    def iter_pages(self, shard: str) -> AsyncIterator[list[tuple[Any, ...]]]:
        """One chain in ``seq`` order, a page of raw rows at a time (``ROW_COLUMNS`` order; the
        body as UTF-8 bytes where the store can give them, what ``verify`` hashes)."""
        raise QueryUnsupported(f"The {self.name} audit backend cannot be read back.")

    async def iter_chain(self, shard: str) -> AsyncIterator[StoredRow]:
        async for page in self.iter_pages(shard):
            for r in page:
                yield stored_row(r)

    # --- queries -----------------------------------------------------------------------
    async def query_raw(
        self, filters: Filters, *, after: tuple[float, str] | None = None, limit: int = 100, desc: bool = True
    ) -> list[tuple[float, str, str, str]]:
        """One keyset page as stored: ``(ts, id, hash, body)``, ordered by ``(ts, id)``."""
        raise QueryUnsupported(
            f"The {self.name} audit backend does not support queries; use sqlite or postgres."
        )

    async def query(
        self, filters: Filters, *, after: tuple[float, str] | None = None, limit: int = 100, desc: bool = True
    ) -> list[dict[str, Any]]:
        """One keyset page of events (each with its ``hash``)."""
        rows = await self.query_raw(filters, after=after, limit=limit, desc=desc)
        return [event_of(body, h) for _, _, h, body in rows]

    def snapshot(
        self, filters: Filters, chain: str | None = None, since_seq: int | None = None, page: int = 1000
    ) -> AsyncIterator[list[tuple[str, int, str, str, str]]]:
        """Pages of ``(shard, seq, prev_hash, hash, body)`` in commit order, all read from ONE
        snapshot of the store (an export: nothing committed meanwhile half-appears in it)."""
        raise QueryUnsupported(
            f"The {self.name} audit backend does not support exports; use sqlite or postgres."
        )

    async def get(self, event_id: str) -> dict[str, Any] | None:
        raise QueryUnsupported(
            f"The {self.name} audit backend does not support queries; use sqlite or postgres."
        )

    async def spend(self, group_by: str, filters: Filters) -> list[dict[str, Any]]:
        raise QueryUnsupported(
            f"The {self.name} audit backend does not support reports; use sqlite or postgres."
        )

    # --- ad-hoc reads (the console's run search, spend series: ``audit/explore.py``) -------
    #: The ``sql.Dialect`` to render read queries in (None: this store cannot be read).
    dialect: Any = None

    async def select(self, query: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """Rows of a read-only query rendered in ``dialect``."""
        raise QueryUnsupported(f"The {self.name} audit backend cannot be read back.")

    # --- content captures (own table, outside the chain; see ``audit/capture.py``) ----------
    async def put_capture(self, event_id: str, ts: float, run_id: str | None, digest: str, body: str) -> None:
        """Store one call's capture, keyed by its event's id."""
        raise QueryUnsupported(f"The {self.name} audit backend cannot hold content captures.")

    async def captures(self, event_ids: list[str]) -> dict[str, tuple[str, str]]:
        """The stored captures of these events: ``{event_id: (hash, body)}`` (pruned: absent)."""
        return {}

    async def prune_captures(self, cutoff_ts: float) -> int:
        """Delete captures of events before ``cutoff_ts``; the chain is not touched."""
        return 0

    # --- retention ---------------------------------------------------------------------
    async def plan_prune(self, cutoff_ts: float) -> dict[str, Anchor]:
        """The anchors pruning everything before ``cutoff_ts`` would leave (nothing deleted yet)."""
        return {}

    async def apply_prune(self, anchors: dict[str, Anchor]) -> int:
        """Delete each shard's events below its anchor and store the anchors; return the count."""
        return 0
