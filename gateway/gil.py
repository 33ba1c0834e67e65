"""Worker threads beside a busy event loop.

Work handed to a thread (file reads, YAML, native engines) needs the GIL back at every step,
and the loop's thread holds it while traffic flows: a waiting thread gets it only after the
interpreter's switch interval. See ``brisk_gil_handoff``.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def brisk_gil_handoff(interval_s: float = 0.0005) -> Iterator[None]:
    """Shorten the GIL switch interval while a reload's work runs in worker threads.

    Reading and checking a policy set (PyYAML, small file reads, thousands of crossings between
    Python and the native engines) needs the GIL back over and over. Beside live traffic the
    loop's thread holds it, and a waiting thread gets it after the switch interval: with the
    default 5 ms a reload under load did not finish in 120 s (tests/policy's reload-under-load
    test); with 0.5 ms it takes under a second. It costs the loop a little, only while a
    reload runs. The interval is process-wide: restored only if nobody changed it meanwhile.
    """
    before = sys.getswitchinterval()
    ours = min(before, interval_s)
    sys.setswitchinterval(ours)
    try:
        yield
    finally:
        if sys.getswitchinterval() == ours:
            sys.setswitchinterval(before)
