"""Redaction cost before and after a change, in one run: off, on (another checkout), on (this one).

    .venv/bin/python bench/redaction_before_after.py BEFORE_DIR [--cases de] [--scale 1.0]

``BEFORE_DIR`` is a checkout of the code before the change (``git worktree add /tmp/before
main``, or ``git archive <commit> | tar -x -C /tmp/before``); it runs under this checkout's
interpreter. Three gateways run side by side, pinned to core 0 like ``bench/redaction.py``'s
(redaction off; on with the code of ``BEFORE_DIR``; on with this checkout's), and each case's
requests go to all three in rotating order, so load on a shared machine falls on both sides
alike: separate runs of ``bench/redaction.py`` at load 6-8 gave case d anywhere in 9.2-11.7x,
while before/after in one run kept a steady ~10% between them. Prints each case's CPU per call
and both ratios to the call with redaction off.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BENCH_KEY, gateway
from bench.redaction import Upstream, _body, _call, _cases, _measure, agent_text


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("before", type=Path, help="a checkout of the code before the change")
    ap.add_argument("--cases", default="de", help="case letters of bench/redaction.py (a-f)")
    ap.add_argument("--scale", type=float, default=1.0, help="iterations multiplier")
    args = ap.parse_args()
    on = {"redaction": {"enabled": True}}
    print(f"load average {[round(x, 2) for x in os.getloadavg()]}")
    with Upstream(agent_text(random.Random(3), 2048, "chat")) as upstream_url:
        with (
            gateway(upstream_url, {}) as off,
            gateway(upstream_url, on, code=args.before.resolve()) as before,
            gateway(upstream_url, on) as after,
            httpx.Client(headers={"authorization": f"Bearer {BENCH_KEY}"}, timeout=120) as client,
        ):
            gateways = [("off", off), ("before", before), ("after", after)]
            for _, gw in gateways:  # warm-up: imports, first-request paths
                for _ in range(5):
                    _call(client, gw.url + "/chat/completions", _body([{"role": "user", "content": "hello"}]))
            for name, (iterations, make) in _cases(random.Random(7), args.scale).items():
                if name[0] not in args.cases:
                    continue
                cpu: dict[str, list[float]] = {label: [] for label, _ in gateways}
                for i in range(iterations):
                    body = make(i)
                    for label, gw in gateways[i % 3 :] + gateways[: i % 3]:
                        seconds, _, status = _measure(client, gw, body)
                        if status != 200:
                            raise SystemExit(f"{name}: {label} answered {status}")
                        cpu[label].append(seconds)
                ms = {label: sum(xs) / len(xs) * 1000 for label, xs in cpu.items()}
                print(
                    f"{name:<28} off {ms['off']:7.2f} ms   before {ms['before']:7.2f} ms "
                    f"({ms['before'] / ms['off']:5.2f}x)   after {ms['after']:7.2f} ms "
                    f"({ms['after'] / ms['off']:5.2f}x)"
                )
    print(f"load average {[round(x, 2) for x in os.getloadavg()]}")


if __name__ == "__main__":
    main()
