"""Multiprocess metric values written to their files in batches, not on every change.

In Prometheus multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``: ``wardgate serve --workers N``)
prometheus-client writes every ``inc``/``set`` (a histogram ``observe`` is two) through to the
process's mmap'd value file, under a lock and a pid check: ~3.4 µs per value measured here
(load ~8), ~0.5 µs buffered. A call records some thirty values: sampled under load it was
~6% of a worker's CPU (py-spy), which the single process, without the directory, never pays
(``bench/cluster.py --breakdown``, the ``metrics`` row).

Once ``attach``ed to the app's event loop (by the observability component, for the app's
lifespan), a change only updates the value in memory and marks it dirty; the dirty values are
written together ``FLUSH_DELAY_S`` after the first change since the last write, on the loop,
each into the slot prometheus-client gave it in its file when the value was made (same file
layout, so the merged ``/metrics`` and ``mark_process_dead`` work as before). ``render``
flushes first, and the app's stop flushes last (``detach``). So:

- a scrape sees its own worker's values exactly and the other workers' at most
  ``FLUSH_DELAY_S`` old (the scrape-time series of ``multiproc.follow`` are up to 1 s old);
- a worker killed outright (SIGKILL, a crash) loses at most its last ``FLUSH_DELAY_S`` of
  changes, which a write-through worker would have kept (counters of a dead worker stay in the
  files and are summed, as prometheus-client does);
- while no loop is attached (start-up, CLI commands, tools, a process without an app) values
  are written through, exactly as prometheus-client does.

Changes from other threads are safe: every change and every write hold one lock, and a change
on another thread schedules the write with ``call_soon_threadsafe``. A value made meanwhile
on another thread (under prometheus-client's lock) only appends a slot: the slots written
here never move. A write in a forked child (pid changed) drops the parent's dirty values.
"""

from __future__ import annotations

import asyncio
import os
import struct
import threading
from collections.abc import Callable
from typing import Any

from prometheus_client import values

from gateway.observability import multiproc

#: prometheus-client's value layout: the value and its timestamp, two native doubles, written
#: with one slice assignment as it does (``pack_into`` let readers see torn zeros).
_two_doubles = struct.Struct("dd").pack

#: How long a change waits for its write: short enough that a scrape (or a test polling
#: ``/metrics``) never notices, long enough to write each value once per many calls.
FLUSH_DELAY_S = 0.1


class _Buffer:
    """The process's dirty values and the loop that writes them."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.dirty: list[Any] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = 0
        self.pid = 0
        self.scheduled = False

    def mark(self, value: Any) -> None:
        """Queue ``value`` for the next write (``self.lock`` held)."""
        value._wg_dirty = True
        self.dirty.append(value)
        if self.scheduled or self.loop is None:
            return
        self.scheduled = True
        if threading.get_ident() == self.thread:
            self.loop.call_later(FLUSH_DELAY_S, self.flush)
            return
        try:
            self.loop.call_soon_threadsafe(self.loop.call_later, FLUSH_DELAY_S, self.flush)
        except RuntimeError:  # the loop closed without detaching: the next detach or scrape writes it
            self.scheduled = False

    def flush(self) -> int:
        """Write every dirty value to its file; the number written."""
        with self.lock:
            self.scheduled = False
            dirty, self.dirty = self.dirty, []
            if os.getpid() != self.pid:  # a forked child: the values and files are the parent's
                return 0
            for value in dirty:
                value._wg_dirty = False
                if value._wg_slot is None:
                    value._file.write_value(value._key, value._value, value._timestamp)
                else:  # the slot never moves (a file that grows is mapped again, same offsets)
                    slot = value._wg_slot
                    value._file._m[slot : slot + 16] = _two_doubles(value._value, value._timestamp)
        return len(dirty)


_BUFFER = _Buffer()


def _buffered(base: Any) -> Any:
    """``base`` (prometheus-client's ``MmapedValue``) with changes kept in memory while attached."""

    class BufferedValue(base):  # prometheus-client's class, made at run time
        _wg_buffered = True
        _value: float
        _timestamp: float

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._wg_dirty = False
            #: The offset of this value's two doubles in its file (made with the value):
            #: written there directly, without ``write_value``'s lookups (None: use them).
            slots = getattr(self._file, "_positions", None)
            slot = slots.get(self._key) if isinstance(slots, dict) else None
            self._wg_slot: int | None = slot if isinstance(slot, int) and hasattr(self._file, "_m") else None

        def inc(self, amount: float) -> None:
            buf = _BUFFER
            if buf.loop is None:
                base.inc(self, amount)
                return
            with buf.lock:
                self._value += amount
                self._timestamp = 0.0
                if not self._wg_dirty:
                    buf.mark(self)

        def set(self, value: float, timestamp: float | None = None) -> None:
            buf = _BUFFER
            if buf.loop is None:
                base.set(self, value, timestamp)
                return
            with buf.lock:
                if not timestamp and value == self._value and not self._timestamp:
                    return  # unchanged (the intake sweep sets its gauges ten times a second)
                self._value = value
                self._timestamp = timestamp or 0.0
                if not self._wg_dirty:
                    buf.mark(self)

    return BufferedValue


def install() -> bool:
    """Make prometheus-client create buffered values from now on; ``False`` when not in
    multiprocess mode (or prometheus-client did not choose its mmap'd values at import)."""
    current = values.ValueClass
    if getattr(current, "_wg_buffered", False):
        return True
    if not multiproc.enabled() or not getattr(current, "_multiprocess", False):
        return False
    values.ValueClass = _buffered(current)
    return True


def attach(loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
    """Buffer changes, written on ``loop``; returns the ``detach`` that writes what is left and
    goes back to writing through. A second loop while one is attached gets a no-op (its
    changes are still buffered, and written by the first loop, or through once it detaches)."""
    if not install():
        return lambda: None
    with _BUFFER.lock:
        if _BUFFER.loop is not None:
            return lambda: None
        _BUFFER.loop, _BUFFER.thread, _BUFFER.pid = loop, threading.get_ident(), os.getpid()

    def detach() -> None:
        with _BUFFER.lock:
            _BUFFER.loop = None
        _BUFFER.flush()

    return detach


def flush() -> int:
    """Write the dirty values now (before a scrape reads the files); the number written."""
    return _BUFFER.flush() if _BUFFER.dirty else 0
