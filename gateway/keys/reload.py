"""Every worker follows ``policies/keys.yaml``: a key created or revoked anywhere applies everywhere.

A background task of the app's lifespan ``stat``s the file every ``interval_s`` (1 s) and,
when its identity changes (inode, mtime, size: an atomic replace always changes the inode),
parses it off the event loop and ``swap``s the shared ``KeyStore``. So a revocation through
the admin API (or the CLI, or a hand edit) stops the key on every worker within
``interval_s`` plus the parse; the worker that served the admin request reloads at once.
Requests never stat or read the file: authentication stays one dict lookup.

A file that does not parse (a broken hand edit, a deleted file) is refused: the last good
keys stay active, the error is logged once per distinct file version, and ``/readyz``
reports ``keys: degraded: ...`` (still 200: one bad edit must not take every replica out of
the load balancer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gateway.context import AppContext
from gateway.gil import brisk_gil_handoff
from gateway.keys.backend import KeysUnavailable
from gateway.keys.keyfile import edit_keys
from gateway.keys.store import KeyFileError, KeyStore, parse_key_file

T = TypeVar("T")

log = logging.getLogger("wardgate.keys")

#: How often each worker checks keys.yaml: the bound on how long a revoked key still works elsewhere.
RELOAD_INTERVAL_S = 1.0

_Signature = tuple[int, int, int]


class KeyReloader:
    def __init__(self, store: KeyStore, path: Path, interval_s: float = RELOAD_INTERVAL_S) -> None:
        self.store = store
        self.path = path
        self.interval_s = interval_s
        self.last_error: str | None = None
        self._seen: _Signature | None = None
        self._lock = asyncio.Lock()

    @property
    def where(self) -> str:
        return str(self.path)

    async def list_entries(self) -> list[dict[str, Any]]:
        """Every virtual key entry of the file (the CLI's ``list``), read only."""

        def read() -> list[dict[str, Any]]:
            text = self.path.read_text(encoding="utf-8") if self.path.exists() else ""
            parse_key_file(text)
            return list((yaml.safe_load(text) or {}).get("keys") or [])

        return await asyncio.to_thread(read)

    async def edit(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Edit keys.yaml (locked, atomic) and reload it here at once.

        A file or directory this process may not write (a read-only image) is a 503
        ``keys_store_unavailable`` naming the path, not a 500."""
        try:
            result = await asyncio.to_thread(edit_keys, self.path, change)
        except OSError as exc:
            log.error("cannot write %s: %s", self.path, exc)
            raise KeysUnavailable(
                f"Keys cannot be changed: {self.path} is not writable by the gateway "
                f"({exc.strerror or type(exc).__name__}). Make it writable, or use a shared "
                "keys backend (keys.backend: redis).",
                code="keys_store_unavailable",
            ) from exc
        await self.reload()
        return result

    def _stat(self) -> _Signature | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def _read(self) -> tuple[_Signature, str]:
        """The file's text and the signature of exactly that version (fstat of the open file)."""
        with open(self.path, encoding="utf-8") as f:
            st = os.fstat(f.fileno())
            return (st.st_ino, st.st_mtime_ns, st.st_size), f.read()

    async def reload(self) -> bool:
        """Read, parse and swap in the file now; False (last good keys kept) if it is refused."""
        async with self._lock:
            try:
                with brisk_gil_handoff():  # a revocation must not wait for the traffic to calm down
                    signature, text = await asyncio.to_thread(self._read)
                    key_set = await asyncio.to_thread(parse_key_file, text)
            except FileNotFoundError:
                return self._refuse(None, "file not found")
            except (KeyFileError, UnicodeDecodeError, OSError) as exc:
                return self._refuse(self._stat(), str(exc))
            self.store.swap(key_set)
            self._seen = signature
            if self.last_error is not None:
                log.info("%s loaded again: %d active keys", self.path, len(key_set.keys))
            self.last_error = None
            return True

    def _refuse(self, signature: _Signature | None, error: str) -> bool:
        if signature != self._seen or self.last_error is None:
            log.error("%s refused, keeping the last good keys: %s", self.path, error)
        self._seen = signature
        self.last_error = error
        return False

    async def watch(self) -> None:
        """Poll the file's signature; reload when it changes (until cancelled)."""
        while True:
            await asyncio.sleep(self.interval_s)
            if self._stat() != self._seen:
                try:
                    await self.reload()
                except Exception:  # the watcher must survive anything; the next change retries
                    log.exception("reloading %s failed", self.path)

    async def ready(self) -> str | None:
        return (
            None
            if self.last_error is None
            else f"degraded: keys.yaml refused, last good keys active ({self.last_error})"
        )


async def follow(keys: KeyStore, path: Path, ctx: AppContext) -> KeyReloader:
    """Start following keys.yaml for ``keys``: a readiness check and a closer on ``ctx``."""
    reloader = KeyReloader(keys, path)
    if reloader.path.exists():
        await reloader.reload()  # catches an edit between the start-up load and now
    ctx.ready_checks["keys"] = reloader.ready
    task = asyncio.create_task(reloader.watch(), name="wardgate-keys-watch")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    ctx.closers.append(stop)
    return reloader
