"""Prometheus multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``): one deployment, not N workers.

With several workers, ``GET /metrics`` merges per-process value files from that directory
(``metrics.render``); whatever a process keeps only in memory is invisible there. Three
things make the merged view the deployment's own:

* **Values read at scrape time** (a collector over plain ints, such as the redaction cache
  counters or a deployment's circuit state) are written into file-backed series instead,
  every ``SYNC_INTERVAL_S`` by each worker (``follow``): at most that old, summed or maxed
  by the series' ``multiprocess_mode``.
* **A worker that exits** has its live gauges (``live*`` modes) removed: by the worker when
  it stops (``mark_dead``), and by the supervisor when it finds a worker dead (a crash).
* **A new start** begins from an empty directory (``clear_directory``, by the process that
  starts the workers): counters and gauges of processes from an earlier run, which
  prometheus-client would otherwise add to this run's forever, are gone.

One directory per server (per replica): two servers sharing one would clear each other's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.context import AppContext

log = logging.getLogger("wardgate.metrics")

#: How often each worker writes its scrape-time values into the shared files.
SYNC_INTERVAL_S = 1.0


def directory() -> Path | None:
    """The multiprocess directory, or ``None`` in single-process mode."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")
    return Path(path) if path else None


def enabled() -> bool:
    return directory() is not None


def clear_directory() -> int:
    """Remove every value file of earlier processes; the number removed (0 when not multiprocess).

    Called once by the process that starts the workers, before any of them writes.
    """
    path = directory()
    if path is None:
        return 0
    path.mkdir(parents=True, exist_ok=True)
    removed = 0
    for file in path.glob("*.db"):
        with contextlib.suppress(FileNotFoundError):
            file.unlink()
            removed += 1
    if removed:
        log.info("metrics: removed %d value files of earlier processes from %s", removed, path)
    return removed


def mark_dead(pid: int) -> None:
    """Drop the live gauges of a process that exited (a no-op when not multiprocess)."""
    if enabled():
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)


class CounterFeed:
    """A file-backed counter fed from a running total kept elsewhere (increments by the delta)."""

    def __init__(self, child: Any) -> None:
        self._child = child
        self._seen = 0.0

    def update(self, total: float) -> None:
        delta = total - self._seen
        if delta > 0:
            self._child.inc(delta)
            self._seen = total


def follow(ctx: AppContext, sync: Callable[[], None], name: str) -> None:
    """In multiprocess mode, run ``sync`` now and every ``SYNC_INTERVAL_S`` for the app's lifespan
    (and once more at stop). A no-op in single-process mode, where collectors read at scrape time.
    """
    if not enabled():
        return
    sync()

    async def loop() -> None:
        while True:
            await asyncio.sleep(SYNC_INTERVAL_S)
            try:
                sync()
            except Exception:  # metrics must never take the worker down; the next tick retries
                log.exception("metrics: syncing %s failed", name)

    task = asyncio.create_task(loop(), name=f"wardgate-metrics-{name}")

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            sync()

    ctx.closers.append(stop)
