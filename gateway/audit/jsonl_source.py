"""Verify an exported or logged event stream (JSONL) offline: ``wardgate audit verify --file``.

Lines may come from ``GET /admin/audit/export?format=jsonl`` or from the ``log`` backend; each
is one event with its ``hash``. The events are grouped by chain and ordered by ``seq`` in
memory, then walked by the same ``verify`` as a store. Lines that are not JSON objects (other
log output sharing stderr with the ``log`` backend) are skipped and counted (``skipped``). There is no heads table in a file, so a
truncated tail is caught only where a later checkpoint witnessed it, unless the file is an
export that names its segments (``export.py``): then each chain must run from the segment's
start (seq 1, or the ``prev_hash`` it names) to its end (``to_seq``/``hash``, like a head row),
and a chain's segment start is reported (``segments``) for the auditor to join to the archive
before it. A single-chain export cannot check what its checkpoints say about other chains, so
those claims are skipped there. Export unfiltered: a filtered export has gaps by design.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from typing import Any

import orjson

from gateway.audit.chain import Head
from gateway.audit.schema import canonical_json, index_columns
from gateway.audit.store.base import Anchor, StoredRow


class JsonlSource:
    #: A file has no heads table: ``verify`` does not ask every chain for a head row.
    has_heads = False

    def __init__(self, lines: Iterable[bytes | str]) -> None:
        self._chains: dict[str, list[StoredRow]] = {}
        self.skipped = 0
        #: The export's segments (shard -> from_seq, prev_hash, to_seq, hash), when it names them.
        self.segments: dict[str, dict[str, Any]] = {}
        #: The chains claims may be checked in (None: all; a single-chain export: that chain).
        self.covers: set[str] | None = None
        for raw in lines:
            line = raw.strip()
            if not line:
                continue
            if line[:1] not in (b"{", "{"):
                self.skipped += 1
                continue
            ev: dict[str, Any] = orjson.loads(line)
            if "id" not in ev and self._export_line(ev):
                continue
            hash_ = str(ev.pop("hash", ""))
            body = canonical_json(ev).decode("utf-8")
            row = StoredRow(
                str(ev.get("id")),
                str(ev.get("shard")),
                int(ev.get("seq", 0)),
                ev.get("ts", 0.0),
                index_columns(ev),
                str(ev.get("prev_hash")),
                hash_,
                body,
            )
            self._chains.setdefault(row.shard, []).append(row)
        for rows in self._chains.values():
            rows.sort(key=lambda r: r.seq)
        self._hashes = {s: {r.seq: r.hash for r in rows} for s, rows in self._chains.items()}
        self._anchors = self._attested_anchors()
        self.has_heads = bool(self.segments)
        for shard, seg in self.segments.items():
            if int(seg.get("from_seq", 1)) > 1:
                self._anchors[shard] = Anchor(int(seg["from_seq"]), str(seg.get("prev_hash")))

    def _export_line(self, line: dict[str, Any]) -> bool:
        """Take an export's scope or segment line; False: not one (an event without an id)."""
        if isinstance(seg := line.get("segment"), dict) and isinstance(seg.get("shard"), str):
            self.segments[seg["shard"]] = seg
            return True
        if isinstance(scope := line.get("export"), dict):
            if isinstance(scope.get("chain"), str):
                self.covers = {scope["chain"]}
            return True
        return False

    @property
    def segment_starts(self) -> set[tuple[str, int, str]]:
        """Chain starts the export itself vouches for (``verify`` accepts them as anchors)."""
        return {(s, int(g["from_seq"]), str(g.get("prev_hash"))) for s, g in self.segments.items()}

    def _attested_anchors(self) -> dict[str, Anchor]:
        """An export has no anchors table: a chain may start where the latest retention event says."""
        latest: dict[str, Anchor] = {}
        for rows in self._chains.values():
            for row in rows:
                ev = orjson.loads(row.body)
                if ev.get("kind") == "retention":
                    for shard, a in ((ev.get("data") or {}).get("anchors") or {}).items():
                        latest[shard] = Anchor(int(a["seq"]), str(a["prev_hash"]))
        # A chain pruned whole has no rows left: its anchor still excuses what is below it
        # (a witness of its last pruned head), and anything at or above it must be present.
        first = {s: rows[0] for s, rows in self._chains.items() if rows}
        return {s: a for s, a in latest.items() if s not in first or first[s].seq == a.seq}

    async def shards(self) -> list[str]:
        return sorted(self._chains)

    async def anchors(self) -> dict[str, Anchor]:
        return dict(self._anchors)

    async def heads(self, since_ts: float = 0.0) -> dict[str, Head]:
        """A segment's end is the chain's end as the export saw it: a head row of the file."""
        return {s: Head(int(g["to_seq"]), str(g.get("hash"))) for s, g in self.segments.items()}

    async def hash_at(self, shard: str, seq: int) -> str | None:
        return self._hashes.get(shard, {}).get(seq)

    async def iter_chain(self, shard: str) -> AsyncIterator[StoredRow]:
        for row in self._chains.get(shard, ()):
            yield row

    async def iter_pages(self, shard: str) -> AsyncIterator[list[tuple[Any, ...]]]:
        rows = self._chains.get(shard, ())
        if rows:
            yield [(r.id, r.shard, r.seq, r.ts, *r.columns, r.prev_hash, r.hash, r.body) for r in rows]
