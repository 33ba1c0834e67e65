"""Start-up cost: CPU seconds and RSS of a ``wardgate serve`` process until ``/healthz`` answers,
per configuration, and the CPU of short ``wardgate`` commands.

Why it matters: every gateway process pays its start (each replica, each ``--workers`` worker,
each restart), and so does the test suite, which starts a gateway process for every test that
needs a crash, a signal or a second replica; a ``wardgate`` command pays the same imports on
each call. A guard that is off must cost nothing here (its libraries are imported only when it
starts, ``tests/core/test_startup_imports.py``).

Configurations (over ``bench.common.gateway``'s base: limits, policy, redaction, approvals and
audit off; MCP and console at their defaults, on): ``base``; each guard alone on; ``all``
(every guard on, the embedded defaults). Each is started ``--runs`` times, interleaved, pinned
to core 0; the median is printed with its ratio to ``base`` in the same run (the machine may be
shared: compare ratios, never absolute figures across runs)::

    .venv/bin/python bench/startup.py [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO, cpu_seconds, gateway

ON = {"enabled": True}
CONFIGS: dict[str, dict[str, Any]] = {
    "base": {},
    "limits": {"limits": ON},
    "audit": {"audit": ON},
    "redaction": {"redaction": ON},
    "policy": {"policy": ON},
    "approvals": {"approvals": ON},
    "cache": {"cache": ON},
    "all": {"limits": ON, "audit": ON, "redaction": ON, "policy": ON, "approvals": ON},
}
COMMANDS: dict[str, list[str]] = {
    "wardgate --help": ["--help"],
    "wardgate serve --help": ["serve", "--help"],
    "wardgate keys --help": ["keys", "--help"],
    "wardgate config check": ["config", "check"],
}


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def start_once(config: dict[str, Any]) -> tuple[float, float]:
    """(CPU seconds, RSS MB) of one gateway process when it first answers ``/healthz``."""
    with gateway("http://127.0.0.1:9/v1", config) as gw:
        return cpu_seconds(gw.pid), _rss_mb(gw.pid)


def command_once(args: list[str]) -> float:
    """CPU seconds of one ``wardgate`` command (``python -m gateway``) run to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "gateway", *args], cwd=REPO, capture_output=True, check=False)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    starts: dict[str, list[tuple[float, float]]] = {name: [] for name in CONFIGS}
    commands: dict[str, list[float]] = {name: [] for name in COMMANDS}
    load0 = os.getloadavg()[0]
    for _ in range(args.runs):
        for name, config in CONFIGS.items():
            starts[name].append(start_once(config))
        for name, argv in COMMANDS.items():
            commands[name].append(command_once(argv))
    base = statistics.median(cpu for cpu, _ in starts["base"])
    print(
        f"wardgate serve until /healthz (median of {args.runs}; load {load0:.1f} -> {os.getloadavg()[0]:.1f})"
    )
    print(f"{'config':12s} {'CPU s':>7s} {'x base':>7s} {'RSS MB':>7s}")
    for name, runs in starts.items():
        cpu = statistics.median(c for c, _ in runs)
        rss = statistics.median(r for _, r in runs)
        print(f"{name:12s} {cpu:7.2f} {cpu / base:7.2f} {rss:7.0f}")
    print(f"\n{'command':24s} {'CPU s':>7s} {'x base start':>13s}")
    for name, values in commands.items():
        cpu = statistics.median(values)
        print(f"{name:24s} {cpu:7.2f} {cpu / base:13.2f}")


if __name__ == "__main__":
    main()
