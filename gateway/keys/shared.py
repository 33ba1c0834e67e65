"""What the two shared keys backends (Redis, PostgreSQL) have in common.

Both keep the whole key set in each worker's memory and differ only in how they read, write
and follow the shared copy. The rest is one contract, written once here: how a load is
adopted (parsed with the admin keys of keys.yaml, swapped in whole, or refused with the last
good keys kept), how a failure is remembered and logged once, what readiness says while the
backend is away, how an edit turns into writes and deletions, and the follower task's life.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, Generic, TypeVar

import yaml

from gateway.keys.store import KeyStore, parse_key_doc

log = logging.getLogger("wardgate.keys")
T = TypeVar("T")
V = TypeVar("V")


def read_doc(path: Path) -> dict[str, Any]:
    """keys.yaml as a document (the admin keys, and the bootstrap import); {} if absent."""
    if not path.exists():
        return {}
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    parse_key_doc(doc)  # refuses a malformed file
    return doc if isinstance(doc, dict) else {}


def created_order(entry: dict[str, Any]) -> tuple[str, str]:
    """A stable order for entries stored unordered: creation time, then id."""
    return (str(entry.get("created_at") or ""), str(entry.get("id")))


class KeyEdit(Generic[T]):
    """``change`` applied to a copy of the stored entries: the result, and what to write.

    ``writes`` are the entries new or changed (by id), ``gone`` the ids removed; the edited
    document is checked like keys.yaml (with the admin keys) before anything is written.
    """

    def __init__(
        self, old: dict[str, dict[str, Any]], change: Callable[[dict[str, Any]], T], admin: list[Any]
    ) -> None:
        keys = sorted(copy.deepcopy(list(old.values())), key=created_order)
        doc: dict[str, Any] = {"keys": keys, "admin_keys": admin}
        self.result = change(doc)
        new = {str(e["id"]): e for e in doc.get("keys") or [] if isinstance(e, dict)}
        parse_key_doc({"keys": list(new.values()), "admin_keys": admin})
        self.writes = {k: e for k, e in new.items() if old.get(k) != e}
        self.gone = [k for k in old if k not in new]


class SharedKeys(Generic[V]):
    """State and behaviour both shared backends have: ``version`` of the last load, ``loaded``,
    ``last_error`` (None when following), the follower task."""

    where: str

    def __init__(self, store: KeyStore, file: Path, version_check_s: float) -> None:
        self.store, self.file, self.version_check_s = store, file, version_check_s
        self.version: V | None = None
        self.loaded = False
        self.last_error: str | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    def _adopt(self, version: V, entries: list[dict[str, Any]], doc: dict[str, Any]) -> None:
        """Swap in ``entries`` (plus keys.yaml's admin keys); raises if they do not parse."""
        keys = sorted(entries, key=created_order)
        key_set = parse_key_doc({"keys": keys, "admin_keys": doc.get("admin_keys") or []})
        self.store.swap(key_set)
        if self.last_error is not None:
            log.info("keys: %s loaded again: %d active keys", self.where, len(key_set.keys))
        self.version, self.loaded, self.last_error = version, True, None

    def _failed(self, error: str) -> bool:
        if error != self.last_error:
            log.error("keys: %s", error)
        self.last_error = error
        return False

    def _unreachable(self, exc: BaseException) -> bool:
        return self._failed(f"{self.where} unreachable: {str(exc) or type(exc).__name__}")

    async def ready(self) -> str | None:
        """Not ready while the backend is away, saying which keys this worker serves meanwhile."""
        if self.last_error is None and self.loaded:
            return None
        if not self.loaded:
            raise RuntimeError(
                f"keys backend {self.last_error or 'not loaded yet'}; no virtual keys loaded yet "
                "(only the admin keys of keys.yaml are active)"
            )
        raise RuntimeError(
            f"keys backend {self.last_error}; serving the last loaded keys "
            f"({len(self.store.principals())} active): revocations cannot arrive until it returns"
        )

    def _start(self, follow: Coroutine[Any, Any, None], name: str) -> None:
        self._task = asyncio.create_task(follow, name=name)

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
