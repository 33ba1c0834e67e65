"""Where a gateway worker's CPU goes, by function: the same calls with redaction off and on.

    .venv/bin/python bench/redaction.py --profile b [--profile-calls 200]

Run as a script, this module is a wrapper around ``python -m gateway serve``: the worker runs
with a cProfile profiler (timer: the event-loop thread's CPU clock, so time the worker spends
descheduled on a shared machine does not count) that ``SIGUSR1`` starts and ``SIGUSR2`` stops
and writes to ``$BENCH_PROFILE_OUT.<pid>``. ``profile_case`` starts two such workers (redaction
off and on), sends both the same calls after a warm-up, and ``diff`` subtracts the two
profiles per function: what is left is the work that happens only with redaction on.

Profiling costs a clock read per Python call and return, so the figures are inflated (most for
code that makes many small calls) and only the difference between on and off, and the
ranking, mean anything; the ratio suite (``bench/redaction.py``) measures the real cost.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
ENV_OUT = "BENCH_PROFILE_OUT"  # not WARDGATE_*: the gateway refuses unknown ones

#: One function's figures summed over the profiled calls: (calls, own seconds, cumulative seconds).
Row = tuple[int, float, float]


def _serve() -> None:
    import cProfile
    import runpy

    profiler = cProfile.Profile(time.thread_time_ns, 1e-9)
    out = os.environ.get(ENV_OUT, "/tmp/wardgate-profile")

    def start(signum: int, frame: Any) -> None:
        profiler.enable()

    def stop(signum: int, frame: Any) -> None:
        profiler.disable()
        path = f"{out}.{os.getpid()}"
        profiler.dump_stats(path + ".part")
        os.replace(path + ".part", path)  # whole or absent: the bench polls for it

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, stop)
    sys.path.insert(0, str(REPO))
    sys.argv = ["gateway", "serve"]
    runpy.run_module("gateway", run_name="__main__")


def load(path: str) -> dict[str, Row]:
    """A profile dump as ``area/module.py:line(function)`` -> (calls, own s, cumulative s)."""
    import pstats

    rows: dict[str, Row] = {}
    stats: dict[tuple[str, int, str], tuple[int, int, float, float, Any]] = pstats.Stats(path).stats  # type: ignore[attr-defined]
    for (filename, line, name), (_, calls, own, cumulative, _) in stats.items():
        short = filename.split("site-packages/")[-1]
        short = short.split(str(REPO) + "/")[-1]
        key = f"{short}:{line}({name})"
        prev = rows.get(key, (0, 0.0, 0.0))
        rows[key] = (prev[0] + calls, prev[1] + own, prev[2] + cumulative)
    return rows


def area(key: str) -> str:
    """``gateway/redaction/scan.py:12(f)`` -> ``gateway/redaction``; a builtin -> ``builtins``."""
    path = key.split(":", 1)[0]
    if path == "~":
        return "builtins (C)"
    parts = path.split("/")
    if parts[0] == "gateway" and len(parts) > 2:
        return "/".join(parts[:2])
    return parts[0] if len(parts) > 1 else path


def diff(off: dict[str, Row], on: dict[str, Row], calls: int, top: int = 40) -> list[str]:
    """Lines: the on - off difference per call, by area (own time) and by function."""
    lines = []
    total_off = sum(r[1] for r in off.values()) / calls * 1e6
    total_on = sum(r[1] for r in on.values()) / calls * 1e6
    lines.append(
        f"profiled CPU per call: off {total_off:,.0f} us, on {total_on:,.0f} us (inflated by profiling)"
    )
    by_area: dict[str, float] = defaultdict(float)
    rows = []
    for key in set(off) | set(on):
        a, b = off.get(key, (0, 0.0, 0.0)), on.get(key, (0, 0.0, 0.0))
        own = (b[1] - a[1]) / calls * 1e6
        by_area[area(key)] += own
        rows.append((own, (b[2] - a[2]) / calls * 1e6, a[0] / calls, b[0] / calls, key))
    lines.append("on - off, own time per call, by area:")
    for name, us in sorted(by_area.items(), key=lambda kv: -abs(kv[1]))[:12]:
        lines.append(f"  {us:9.1f} us  {name}")
    lines.append(f"on - off per call, the {top} functions with the most own time added:")
    lines.append(f"  {'own us':>9} {'cum us':>9} {'calls off':>9} {'on':>7}  function")
    for own, cumulative, calls_off, calls_on, key in sorted(rows, key=lambda r: -r[0])[:top]:
        lines.append(f"  {own:9.1f} {cumulative:9.1f} {calls_off:9.1f} {calls_on:7.1f}  {key}")
    return lines


def profile_case(
    upstream_url: str,
    on_config: dict[str, Any],
    bodies: list[dict[str, Any]],
    send: Callable[[Any, str, dict[str, Any]], int],
    client: Any,
) -> list[str]:
    """Profile ``bodies`` (the first ten warm up, unprofiled) through a redaction-off and a
    redaction-on worker; the diff's lines."""
    import tempfile

    from bench.common import gateway

    warm, measured = bodies[:10], bodies[10:]
    out_dir = Path(tempfile.mkdtemp(prefix="wg-profile-"))
    dumps: dict[str, dict[str, Row]] = {}
    configs = {"off": {}, "on": {"redaction": {"enabled": True, **on_config}}}
    wrap = [sys.executable, str(Path(__file__).resolve())]
    for label, config in configs.items():
        os.environ[ENV_OUT] = str(out_dir / label)
        try:
            with gateway(upstream_url, config, wrap=wrap) as gw:
                url = gw.url + "/chat/completions"
                for body in warm:  # imports, first-request paths, the analysis cache
                    send(client, url, body)
                os.kill(gw.pid, signal.SIGUSR1)
                time.sleep(0.2)
                errors = sum(1 for body in measured if send(client, url, body) != 200)
                os.kill(gw.pid, signal.SIGUSR2)
                dump = out_dir / f"{label}.{gw.pid}"
                deadline = time.monotonic() + 30
                while not dump.exists() and time.monotonic() < deadline:
                    time.sleep(0.1)
                dumps[label] = load(str(dump))
                if errors:
                    raise RuntimeError(f"{errors} of {len(measured)} calls failed with redaction {label}")
        finally:
            os.environ.pop(ENV_OUT, None)
    return diff(dumps["off"], dumps["on"], len(measured))


if __name__ == "__main__":
    _serve()
