"""The semantic cache's in-process index: the vectors of stored answers, per context.

A hit needs the same context hash (``semantic.query``: scope, endpoint, model, everything
but the last user turn, the turn's numbers and placeholders), so vectors are grouped by it
and a search only ever looks in one group: another team's (or another conversation's)
vectors are never candidates, whatever their similarity.

A group is searched by brute force (one matrix product in numpy) while it is small, and
gets an HNSW index (``usearch``) once it holds ``ann_min`` vectors (measured, bench/cache.py
``--semantic``, CPU per search, random unit vectors: 2,048 vectors 123 µs brute force vs
263 µs HNSW; 8,192: 731 vs 816; 20,000: 2,964 vs 1,631; below ~8k the product is cheaper,
and exact). Most groups stay tiny (each conversation history is its own context); a
single-turn assistant with one system prompt is one big group.

Bounded: at most ``max_entries`` vectors per process, the oldest dropped first; an entry
past its lifetime is skipped and dropped. An indexed entry whose answer is gone from the
store (evicted, purged elsewhere) is a miss when looked up, never an error.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gateway.cache.embedder import DIM, Vector
from gateway.cache.key import CacheKey


@dataclass(frozen=True, slots=True)
class Indexed:
    """One stored answer as the index knows it."""

    key: CacheKey
    context: str
    #: Hashes of the normalised turn and of its sorted words (the word-order guard).
    text: str
    bag: str
    expires: float


@dataclass(frozen=True, slots=True)
class Candidate:
    entry: Indexed
    similarity: float


class _Group:
    def __init__(self) -> None:
        self.rows: list[Indexed | None] = []
        self.matrix = np.zeros((8, DIM), dtype=np.float32)
        self.live = 0
        self.ann: Any = None

    def add(self, vector: Vector, entry: Indexed, ann_min: int) -> int:
        row = len(self.rows)
        if row == self.matrix.shape[0]:
            self.matrix = np.concatenate([self.matrix, np.zeros_like(self.matrix)])
        self.matrix[row] = vector
        self.rows.append(entry)
        self.live += 1
        if self.ann is not None:
            self.ann.add(row, vector)
        elif self.live >= ann_min:
            self._build()
        return row

    def _build(self) -> None:
        from usearch.index import Index

        ann = Index(ndim=DIM, metric="ip", dtype="f32", connectivity=16, expansion_search=64)
        rows = np.array([i for i, e in enumerate(self.rows) if e is not None], dtype=np.uint64)
        if len(rows):
            ann.add(rows, self.matrix[rows.astype(np.int64)], threads=1)
        self.ann = ann

    def drop(self, row: int) -> None:
        if self.rows[row] is not None:
            self.rows[row] = None
            self.live -= 1
            self.matrix[row] = 0.0
            if self.ann is not None:
                self.ann.remove(row)

    def search(self, vector: Vector, count: int) -> list[tuple[int, float]]:
        n = len(self.rows)
        if self.ann is not None:
            found = self.ann.search(vector, count, threads=1)
            return [(int(k), 1.0 - float(d)) for k, d in zip(found.keys, found.distances, strict=True)]
        sims = self.matrix[:n] @ vector
        if n <= count:
            order = np.argsort(-sims)
        else:
            top = np.argpartition(-sims, count)[:count]
            order = top[np.argsort(-sims[top])]
        return [(int(i), float(sims[i])) for i in order]


class VectorIndex:
    def __init__(
        self, max_entries: int = 20000, ann_min: int = 8192, clock: Callable[[], float] | None = None
    ) -> None:
        import time

        self.max_entries = max_entries
        self.ann_min = ann_min
        self._clock = clock or time.time
        self._groups: dict[str, _Group] = {}
        #: key id -> (context, row), oldest first.
        self._where: OrderedDict[str, tuple[str, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._where)

    def __contains__(self, key_id: str) -> bool:
        return key_id in self._where

    def add(self, vector: Vector, entry: Indexed) -> None:
        """Index ``entry`` (replacing an entry of the same key); the oldest go past the bound."""
        kid = entry.key.id
        if kid in self._where:
            self._remove(kid)
        group = self._groups.get(entry.context)
        if group is None:
            group = self._groups[entry.context] = _Group()
        self._where[kid] = (entry.context, group.add(vector, entry, self.ann_min))
        while len(self._where) > self.max_entries:
            self._remove(next(iter(self._where)))

    def _remove(self, kid: str) -> None:
        context, row = self._where.pop(kid)
        group = self._groups[context]
        group.drop(row)
        if group.live == 0:
            del self._groups[context]
        elif len(group.rows) > 4 * group.live + 64:
            self._compact(context, group)

    def _compact(self, context: str, group: _Group) -> None:
        """Rebuild a group whose rows are mostly dropped (rows are never reused)."""
        fresh = self._groups[context] = _Group()
        for row, entry in enumerate(group.rows):
            if entry is not None:
                self._where[entry.key.id] = (context, fresh.add(group.matrix[row], entry, self.ann_min))

    def search(self, context: str, vector: Vector, threshold: float, count: int = 4) -> list[Candidate]:
        """Entries of ``context`` at least ``threshold`` similar to ``vector``, best first."""
        group = self._groups.get(context)
        if group is None:
            return []
        now = self._clock()
        out: list[Candidate] = []
        expired: list[str] = []
        for row, sim in group.search(vector, count):
            entry = group.rows[row] if 0 <= row < len(group.rows) else None
            if entry is None or sim < threshold:
                continue
            if entry.expires <= now:
                expired.append(entry.key.id)
                continue
            out.append(Candidate(entry, sim))
        for kid in expired:
            if kid in self._where:
                self._remove(kid)
        return out

    def purge(self, scope: str | None, model: str | None) -> None:
        """Forget the vectors of ``scope`` and/or ``model`` (both None: all)."""
        doomed = [
            kid
            for kid, (context, row) in self._where.items()
            if (entry := self._groups[context].rows[row]) is not None
            and (scope is None or entry.key.scope == scope)
            and (model is None or entry.key.model == model)
        ]
        for kid in doomed:
            self._remove(kid)

    def stats(self) -> dict[str, int]:
        return {
            "vectors": len(self._where),
            "contexts": len(self._groups),
            "ann_groups": sum(1 for g in self._groups.values() if g.ann is not None),
        }
