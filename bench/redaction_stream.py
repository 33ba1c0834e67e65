"""Stream redaction: case (f) of ``bench/redaction.py`` with time to first byte and token, and
paced as well as burst upstreams, optionally against the code before a change, in one run.

    .venv/bin/python bench/redaction_stream.py [--iterations 40] [--before /path/to/old/checkout]

A 2 KB answer in 3-character chat deltas (~700 events) comes from an upstream that writes it
either all at once (``burst``: what ``bench/redaction.py`` case f measures; the gateway reads
many events per network read) or one event at a time ``--pace-ms`` apart (``paced``: a model
generating live, one event per read). For each, gateways with redaction off and on are asked
alternately; with ``--before`` a second pair runs that checkout's ``gateway`` package, so the
ratio before and after a change is measured in the same run, under the same load.

Reported per gateway: CPU per call (``schedstat``, all threads), the on/off CPU ratio, and the
client's median time to the first body byte (TTFB) and to the first non-empty content delta
(TTFT). Redaction holds the first text back until it is analysed (hold-back + 64 characters),
so TTFT on is later than off by design; TTFB is when the status line and the first events
go out.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import bench.redaction as ratio_suite
from bench.common import BENCH_KEY, gateway
from bench.redaction import _UPSTREAM, _cpu, agent_text

#: The upstream of bench/redaction.py, writing one event per ``PACE`` seconds when PACE > 0.
_PACED = _UPSTREAM.replace(
    '            writer.write(stream if b\'"stream":true\' in data.replace(b" ", b"") else plain)\n',
    '            if b\'"stream":true\' in data.replace(b" ", b"") and PACE:\n'
    "                writer.write(stream[:stream.index(b'\\r\\n\\r\\n') + 4])\n"
    "                for c in chunks:\n"
    "                    await asyncio.sleep(PACE)\n"
    "                    writer.write(b'%x\\r\\n%s\\r\\n' % (len(c), c))\n"
    "                writer.write(b'0\\r\\n\\r\\n')\n"
    "            else:\n"
    '                writer.write(stream if b\'"stream":true\' in data.replace(b" ", b"") else plain)\n',
)

assert _PACED != _UPSTREAM, "bench/redaction.py's upstream changed: update _PACED"


class Upstream(ratio_suite.Upstream):
    """bench/redaction.py's upstream, writing one event per ``pace_s`` seconds when > 0."""

    def __init__(self, answer: str, pace_s: float) -> None:
        super().__init__(answer)
        self._pace = pace_s

    def _code(self) -> str:
        return f"PACE = {self._pace!r}\n" + _PACED.replace("@PORT@", str(self.port))


def _body(i: int) -> dict[str, Any]:
    return {
        "model": "bench-model",
        "messages": [{"role": "user", "content": f"summarise ticket {i}"}],
        "max_tokens": 1000,
        "stream": True,
    }


def _one(client: httpx.Client, gw: Any, i: int) -> tuple[float, float, float, str]:
    """CPU of the gateway, TTFB, TTFT, and the text the client read."""
    c0, t0 = _cpu(gw.pid), time.perf_counter()
    ttfb = ttft = float("nan")
    text: list[str] = []
    buf = b""
    with client.stream("POST", gw.url + "/chat/completions", json=_body(i)) as resp:
        for raw in resp.iter_raw():
            now = time.perf_counter() - t0
            if ttfb != ttfb:
                ttfb = now
            buf += raw
            *events, buf = buf.split(b"\n\n")
            for ev in events:
                data = ev.removeprefix(b"data: ")
                if data == b"[DONE]" or not data:
                    continue
                for choice in orjson.loads(data).get("choices") or ():
                    piece = (choice.get("delta") or {}).get("content") or ""
                    if piece and ttft != ttft:
                        ttft = time.perf_counter() - t0
                    text.append(piece)
    return _cpu(gw.pid) - c0, ttfb, ttft, "".join(text)


def run(iterations: int, pace_s: float, before: Path | None) -> list[dict[str, Any]]:
    answer = agent_text(random.Random(3), 2048, "chat")
    rows = []
    for mode, pace in (("burst", 0.0), ("paced", pace_s)):
        with contextlib.ExitStack() as stack:
            url = stack.enter_context(Upstream(answer, pace))
            gws: dict[str, Any] = {}
            for code, tag in ((before, "before"), (None, "after")):
                if tag == "before" and code is None:
                    continue
                extra = {"code": code} if code is not None else {}
                gws[f"{tag} off"] = stack.enter_context(gateway(url, {}, **extra))
                on = {"redaction": {"enabled": True}}
                gws[f"{tag} on"] = stack.enter_context(gateway(url, on, **extra))
            client = stack.enter_context(
                httpx.Client(headers={"authorization": f"Bearer {BENCH_KEY}"}, timeout=120)
            )
            for gw in gws.values():
                for i in range(3):
                    _one(client, gw, -1 - i)
            samples: dict[str, list[tuple[float, float, float, str]]] = {k: [] for k in gws}
            names = list(gws)
            for i in range(iterations):
                order = names if i % 2 == 0 else names[::-1]
                for name in order:
                    samples[name].append(_one(client, gws[name], i))
            for name in names:
                cpu = statistics.mean(s[0] for s in samples[name]) * 1000
                rows.append(
                    {
                        "mode": mode,
                        "gateway": name,
                        "cpu_ms": round(cpu, 3),
                        "ttfb_ms": round(statistics.median(s[1] for s in samples[name]) * 1000, 2),
                        "ttft_ms": round(statistics.median(s[2] for s in samples[name]) * 1000, 2),
                        "text_len": len(samples[name][-1][3]),
                    }
                )
            for tag in ("before", "after"):
                off = next((r for r in rows if r["mode"] == mode and r["gateway"] == f"{tag} off"), None)
                on = next((r for r in rows if r["mode"] == mode and r["gateway"] == f"{tag} on"), None)
                if off and on:
                    on["ratio"] = round(on["cpu_ms"] / off["cpu_ms"], 2)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--pace-ms", type=float, default=1.0, help="paced upstream: ms between events")
    ap.add_argument("--before", type=Path, help="a checkout whose gateway package is 'before'")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    load0 = Path("/proc/loadavg").read_text().split()[:3]
    rows = run(args.iterations, args.pace_ms / 1000, args.before)
    load1 = Path("/proc/loadavg").read_text().split()[:3]
    if args.json:
        print(orjson.dumps({"load": [load0, load1], "rows": rows}, option=orjson.OPT_INDENT_2).decode())
        return
    print(f"load {' '.join(load0)} -> {' '.join(load1)}; {args.iterations} calls per gateway and mode")
    print(
        f"{'mode':<6} {'gateway':<11} {'cpu/call':>9} {'ratio':>6} {'TTFB p50':>9} {'TTFT p50':>9} {'chars':>6}"
    )
    for r in rows:
        ratio = f"{r['ratio']:.2f}x" if "ratio" in r else ""
        print(
            f"{r['mode']:<6} {r['gateway']:<11} {r['cpu_ms']:>7.2f}ms {ratio:>6} "
            f"{r['ttfb_ms']:>7.2f}ms {r['ttft_ms']:>7.2f}ms {r['text_len']:>6}"
        )


if __name__ == "__main__":
    main()
