"""``SortedLog``: the in-memory twin of a Redis sorted set, for ``MemoryStore``.

Built for the way the stores use their logs: entries arrive in score order (arrival time,
or arrival time + a constant lease) and leave from the front (expiry). So adding is an
append in the common case and expiring advances a head index; the dead prefix is dropped
once it is half the list. A plain sorted list paid a memmove of the whole log per expired
entry, which at thousands of calls per window was the store's largest cost.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator

_TOP = "\U0010ffff"  # sorts after every member: (score, _TOP) bounds all entries of one score


class SortedLog:
    __slots__ = ("_head", "_items", "scores")

    def __init__(self) -> None:
        self._items: list[tuple[int, str]] = []
        self._head = 0
        #: member -> score of every live entry.
        self.scores: dict[str, int] = {}

    def add(self, score: int, member: str) -> None:
        """Add ``member`` at ``score``, replacing its earlier entry if any."""
        if member in self.scores:
            self.remove(member)
        entry = (score, member)
        items = self._items
        if len(items) == self._head or entry >= items[-1]:
            items.append(entry)
        else:
            bisect.insort(items, entry, lo=self._head)
        self.scores[member] = score

    def remove(self, member: str) -> bool:
        score = self.scores.pop(member, None)
        if score is None:
            return False
        i = bisect.bisect_left(self._items, (score, member), lo=self._head)
        del self._items[i]
        return True

    def pop_until(self, max_score: int) -> list[tuple[int, str]]:
        """Remove and return every entry with score <= ``max_score``."""
        items, head = self._items, self._head
        if head == len(items) or items[head][0] > max_score:
            return []
        end = bisect.bisect_right(items, (max_score, _TOP), lo=head)
        gone = items[head:end]
        for _, m in gone:
            del self.scores[m]
        if end * 2 >= len(items):
            del items[:end]
            self._head = 0
        else:
            self._head = end
        return gone

    def score_at(self, k: int) -> int:
        """The score of the k-th live entry (0 = the oldest)."""
        return self._items[self._head + k][0]

    def __iter__(self) -> Iterator[tuple[int, str]]:
        items = self._items
        for i in range(self._head, len(items)):
            yield items[i]

    def __len__(self) -> int:
        return len(self._items) - self._head
