"""Garbage-collector pauses: a histogram by generation, and a warning for long ones.

A collection holds the GIL for as long as it scans. A full (generation 2) collection over a
heap of objects that survived into the old generation (caches, pools, buffers) takes tens of
milliseconds, and every call in flight waits: it shows as p99 and nowhere else. The metric
tells an operator whether a latency tail is the GC; the warning says which generation and
how long. ``gc.callbacks`` is interpreter-wide, so the watch is added in the lifespan and
removed when the app closes.
"""

from __future__ import annotations

import gc
import logging
import time
from typing import Any

from prometheus_client import CollectorRegistry, Histogram

log = logging.getLogger("wardgate.gc")

_BUCKETS = (0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class GCWatch:
    def __init__(self, registry: CollectorRegistry, slow_s: float = 0.02) -> None:
        self.slow_s = slow_s
        histogram = Histogram(
            "wardgate_gc_pause_seconds",
            "Cyclic garbage collector pauses by generation.",
            ["generation"],
            buckets=_BUCKETS,
            registry=registry,
        )
        self._by_generation = [histogram.labels(str(g)) for g in range(3)]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        generation = info.get("generation", 2)
        self._by_generation[min(generation, 2)].observe(pause)
        if pause >= self.slow_s:
            log.warning(
                "gc generation %d paused the process for %.1f ms (%d objects freed)",
                generation,
                pause * 1000,
                info.get("collected", 0),
            )

    def install(self) -> None:
        gc.callbacks.append(self)

    async def close(self) -> None:
        if self in gc.callbacks:
            gc.callbacks.remove(self)
