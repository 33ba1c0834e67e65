"""Gateway overhead in pass-through config vs a direct call to the same fake upstream.

    .venv/bin/python bench/overhead.py [--seconds 15]

Prints RPS, p50, p99 for c=1 and c=32, non-stream and stream: direct, through the smallest
possible Python pass-through (the ceiling on this machine, bench/minimal_passthrough.py) and
through the gateway (one worker); the added latency, CPU per request, and the gateway's
throughput as a share of the ceiling's.
Targets (issue 3): >= 5,000 RPS non-stream and >= 4,000 RPS stream at c=32; added p50
<= 0.4 ms and p99 <= 2 ms at c=1; <= 200 µs CPU per request.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CHAT_BODY, cpu_seconds, fake_upstream, gateway, minimal_passthrough, wrk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    with fake_upstream() as upstream, gateway(upstream, {}) as gw, minimal_passthrough(upstream) as floor:
        for stream in (False, True):
            body = {**CHAT_BODY, "stream": stream}
            kind = "stream" if stream else "non-stream"
            for target in (gw, floor):  # warm-up
                wrk(target.url + "/chat/completions", body, 8, 2)
            for conns in (1, 32):
                direct = wrk(upstream + "/chat/completions", body, conns, args.seconds)
                results = {}
                for name, target in (("minimal", floor), ("gateway", gw)):
                    cpu0 = cpu_seconds(target.pid)
                    res = wrk(target.url + "/chat/completions", body, conns, args.seconds)
                    results[name] = (res, (cpu_seconds(target.pid) - cpu0) / max(res.requests, 1) * 1e6)
                print(f"{kind:10s} c={conns:<3d} direct   {direct.row()}")
                for name, (res, cpu) in results.items():
                    print(f"{kind:10s} c={conns:<3d} {name:8s} {res.row()}  cpu {cpu:6.0f} µs/req")
                through = results["gateway"][0]
                share = through.rps / max(results["minimal"][0].rps, 1) * 100
                print(
                    f"{kind:10s} c={conns:<3d} added    p50 {through.p50_ms - direct.p50_ms:+.3f} ms  "
                    f"p99 {through.p99_ms - direct.p99_ms:+.3f} ms  gateway = {share:.0f}% of the minimal RPS"
                )
                sys.stdout.flush()


if __name__ == "__main__":
    main()
