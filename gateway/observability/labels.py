"""Bounded label values: the first N distinct values pass, the rest become ``other``.

Team, model and deployment names come from configuration but also from callers (a model
name in a request body), so one misbehaving client could create unbounded series. Model
names are checked against the catalog before they get here (``UNKNOWN`` otherwise), so this
bound is the second line. Run ids and request ids are never labels at all.
"""

from __future__ import annotations

import threading
from typing import Any

OTHER = "other"
NONE = ""
#: A value that must not become a label of its own (a model name no authenticated caller
#: was configured for): counted, never named.
UNKNOWN = "unknown"


class BoundedValues:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, value: object) -> str:
        if value is None:
            return NONE
        text = str(value)[:128]
        if text in self._seen:
            return text
        with self._lock:
            if text in self._seen:
                return text
            if len(self._seen) >= self.limit:
                return OTHER
            self._seen.add(text)
            return text


class LabelledChildren:
    """``metric.labels(*values)``, cached per metric and values.

    ``labels()`` costs a few µs per call (a lock, tuple checks), which on the per-call path is
    most of what metrics add; each metrics holder keeps one of these and calls it instead.
    Label values must already be bounded (``BoundedValues``): the cache grows with them.
    """

    __slots__ = ("_children",)

    def __init__(self) -> None:
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def __call__(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child
