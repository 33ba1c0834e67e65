"""Gateway overhead in pass-through config vs a direct call to the same fake upstream.

    .venv/bin/python bench/overhead.py [--seconds 15]

Prints RPS, p50, p99 for c=1 and c=32, non-stream and stream, direct and through the
gateway (one worker), the added latency, and the gateway's CPU per request.
Targets (issue 3): >= 5,000 RPS non-stream and >= 4,000 RPS stream at c=32; added p50
<= 0.4 ms and p99 <= 2 ms at c=1; <= 200 µs CPU per request.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import CHAT_BODY, cpu_seconds, fake_upstream, gateway, wrk


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args()
    with fake_upstream() as upstream, gateway(upstream, {}) as gw:
        for stream in (False, True):
            body = {**CHAT_BODY, "stream": stream}
            kind = "stream" if stream else "non-stream"
            wrk(gw.url + "/chat/completions", body, 8, 2)  # warm-up
            for conns in (1, 32):
                direct = wrk(upstream + "/chat/completions", body, conns, args.seconds)
                cpu0 = cpu_seconds(gw.pid)
                through = wrk(gw.url + "/chat/completions", body, conns, args.seconds)
                cpu = (cpu_seconds(gw.pid) - cpu0) / max(through.requests, 1) * 1e6
                print(f"{kind:10s} c={conns:<3d} direct   {direct.row()}")
                print(f"{kind:10s} c={conns:<3d} gateway  {through.row()}  cpu {cpu:6.0f} µs/req")
                print(f"{kind:10s} c={conns:<3d} added    p50 {through.p50_ms - direct.p50_ms:+.3f} ms  "
                      f"p99 {through.p99_ms - direct.p99_ms:+.3f} ms")
                sys.stdout.flush()


if __name__ == "__main__":
    main()
