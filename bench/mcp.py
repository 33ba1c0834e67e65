"""MCP ``tools/call`` through the gateway's ``/mcp/{server}`` vs directly against the same server.

    .venv/bin/python bench/mcp.py [--seconds 5] [--conns 1,16] [--server fast|sdk [--sse]] [--tool lookup_order]

One run, one upstream in a child process: by default bench/mcp_fast_server.py (the crm
sample's read tools and data, JSON-RPC by hand: a fast server, so the upstream is not the
bottleneck), or with ``--server sdk`` the ``crm`` sample itself (orchestrator/mcp_servers/, the
official ``mcp`` SDK's server, a few hundred µs per call; JSON answers unless ``--sse``).
The gateway (one worker, every guard on: limits, Rego policy incl. ``wardgate.mcp``,
redaction of arguments and results, approvals, audit) is pinned to core 0; the server and
this load generator share core 1, so the gateway's CPU is its own.

The load generator is lean on purpose: one ``initialize`` per connection (the session id it
gets is sent on every call), then raw JSON-RPC ``tools/call`` POSTs over aiohttp keep-alive
connections, one call in flight per connection. The SDK's client would cost more per call
than the gateway and measure itself.

Prints for each concurrency: calls/s, p50/p99 direct, through the floor and through the
gateway, the added p50, and the CPU per call (process CPU time / calls: robust on a loaded
machine) with the calls/s one fully busy gateway core sustains at that cost. The floor
(bench/mcp_floor.py, pinned to core 0 like the gateway, idle while the gateway is measured) is
the least a proxy hop can do on the same server stack and client library: accept the POST,
forward the body over a kept-alive connection, return the answer. Its added p50 is what any
hop costs on this machine; the gateway's own share is the gateway's added p50 minus the floor's.
Targets (issue 21): added p50 <= 1 ms with every guard on; >= 1,000 calls/s through one worker.

``--callgrind N`` instead counts the gateway's instructions per call, which no other load on
the machine changes: the gateway runs under ``valgrind --tool=callgrind`` with instrumentation
off, is warmed up, then instrumentation is switched on for N sequential calls (one session),
and the total is divided by N (idle timers included: they run while the calls do).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import glob
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import orjson

from bench.common import (
    BENCH_KEY,
    REPO,
    cpu_seconds,
    free_port,
    gateway,
    minimal_passthrough,
    pinned,
    wait_http,
)

#: Every guard on; limits with rates no bench reaches (the bench measures work, not the example limits).
GUARDS_ON: dict[str, Any] = {
    "limits": {"enabled": True},
    "policy": {"enabled": True},
    "redaction": {"enabled": True},
    "approvals": {"enabled": True},
    "audit": {"enabled": True},
}
HIGH_LIMITS = {
    "scopes": {
        kind: {"requests_per_minute": 10**9, "tokens_per_minute": 10**15} for kind in ("key", "agent", "run")
    }
}
TOOLS = {
    "lookup_order": {"order_id": "ORD-1001"},
    "search_kb": {"query": "refund policy for damaged items"},
}
PROTOCOL = "2025-06-18"


@dataclass
class Result:
    calls: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def row(self) -> str:
        return (
            f"{self.rps:8.0f} calls/s  p50 {self.pct(50):7.3f} ms  p99 {self.pct(99):7.3f} ms  "
            f"errors {self.errors}"
        )


def _message(body: bytes, content_type: str) -> dict[str, Any]:
    """The JSON-RPC answer of a POST: the JSON body, or the last ``data:`` line of an SSE stream."""
    if content_type.startswith("text/event-stream"):
        data = [line[5:].strip() for line in body.splitlines() if line.startswith(b"data:")]
        return orjson.loads(data[-1]) if data else {}
    return orjson.loads(body) if body else {}


class Connection:
    """One MCP session over one keep-alive connection, with raw JSON-RPC POSTs."""

    def __init__(self, http: aiohttp.ClientSession, url: str, headers: dict[str, str]) -> None:
        self.http = http
        self.url = url
        self.headers = {
            "Content-Type": "application/json",
            "Accept": "application/json, text/event-stream",
            **headers,
        }
        self.ids = itertools.count(1)

    async def post(self, message: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        async with self.http.post(self.url, data=orjson.dumps(message), headers=self.headers) as resp:
            body = await resp.read()
            if resp.status == 202:
                return resp.status, {}
            if "mcp-session-id" in resp.headers:
                self.headers["Mcp-Session-Id"] = resp.headers["mcp-session-id"]
            return resp.status, _message(body, resp.headers.get("content-type", ""))

    async def open(self) -> None:
        status, answer = await self.post(
            {
                "jsonrpc": "2.0",
                "id": 0,
                "method": "initialize",
                "params": {
                    "protocolVersion": PROTOCOL,
                    "capabilities": {},
                    "clientInfo": {"name": "wardgate-bench", "version": "1"},
                },
            }
        )
        if status != 200 or "result" not in answer:
            raise RuntimeError(f"initialize failed: HTTP {status} {answer}")
        self.headers["Mcp-Protocol-Version"] = str(answer["result"].get("protocolVersion") or PROTOCOL)
        await self.post({"jsonrpc": "2.0", "method": "notifications/initialized"})

    async def call(self, tool: str, arguments: dict[str, Any]) -> bool:
        message = {
            "jsonrpc": "2.0",
            "id": next(self.ids),
            "method": "tools/call",
            "params": {"name": tool, "arguments": arguments},
        }
        status, answer = await self.post(message)
        result = answer.get("result")
        return status == 200 and isinstance(result, dict) and not result.get("isError")


async def drive(url: str, headers: dict[str, str], conns: int, seconds: float, tool: str) -> Result:
    """``conns`` sessions calling ``tool`` back to back for ``seconds``."""
    arguments = TOOLS[tool]
    connector = aiohttp.TCPConnector(limit=conns, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as http:
        sessions = [Connection(http, url, headers) for _ in range(conns)]
        await asyncio.gather(*(s.open() for s in sessions))
        latencies: list[float] = []
        errors = 0
        stop = time.perf_counter() + seconds

        async def loop(session: Connection) -> None:
            nonlocal errors
            while time.perf_counter() < stop:
                t0 = time.perf_counter()
                ok = await session.call(tool, arguments)
                latencies.append((time.perf_counter() - t0) * 1000)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(loop(s) for s in sessions))
        return Result(len(latencies), errors, time.perf_counter() - started, latencies)


@contextlib.contextmanager
def mcp_server(kind: str, sse: bool = False, core: int = 1) -> Iterator[str]:
    """The upstream: ``fast`` (bench/mcp_fast_server.py) or ``sdk`` (the crm sample server)."""
    port = free_port()
    if kind == "fast":
        cmd = [sys.executable, str(REPO / "bench" / "mcp_fast_server.py"), "--port", str(port)]
    else:
        cmd = [sys.executable, "-m", "orchestrator.mcp_servers", "crm", "--port", str(port)]
        if not sse:
            cmd.append("--json")
    proc = subprocess.Popen(pinned(cmd, core), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        wait_http(f"http://127.0.0.1:{port}/", timeout=60)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def callgrind(
    args: argparse.Namespace, files: dict[str, Any], guards: dict[str, Any], headers: dict[str, str]
) -> None:
    """Instructions per ``tools/call`` of the gateway process (see the module's doc)."""
    if not shutil.which("valgrind"):
        raise SystemExit("valgrind is not installed: apt-get install -y valgrind")
    out = tempfile.mkdtemp(prefix="wg-mcp-callgrind-")
    prefix = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out}/cg.%p"]
    with gateway("http://127.0.0.1:9/v1", guards, extra_files=files, wrap=prefix) as gw:
        url = gw.url.removesuffix("/v1") + "/mcp/crm"
        asyncio.run(drive(url, headers, 1, max(args.warmup, 10.0), args.tool))  # warm-up, uninstrumented
        errors = asyncio.run(instrumented_calls(gw.pid, url, headers, args.callgrind, args.tool))
    # The dump asked for after the calls ("Trigger: dump") holds exactly them; the one written
    # at exit holds nothing of interest (and its summary is not meaningful with instr-atstart=no).
    total = 0
    for dump in glob.glob(f"{out}/cg.*.*"):
        found = re.search(r"^totals:\s+(\d+)", Path(dump).read_text(errors="replace"), re.M)
        total += int(found.group(1)) if found else 0
    if os.environ.get("KEEP_CALLGRIND"):
        print(f"dumps kept in {out}")
    else:
        shutil.rmtree(out, ignore_errors=True)
    print(
        f"callgrind: {args.callgrind} calls ({errors} errors), "
        f"{total / max(args.callgrind, 1) / 1000:,.1f}k instructions per call in the gateway process"
    )


async def instrumented_calls(pid: int, url: str, headers: dict[str, str], calls: int, tool: str) -> int:
    """Open a session, then make exactly ``calls`` sequential calls with instrumentation on."""

    def control(*flags: str) -> None:
        subprocess.run(["callgrind_control", *flags, str(pid)], check=True, capture_output=True)

    async with aiohttp.ClientSession() as http:
        session = Connection(http, url, headers)
        await session.open()
        await asyncio.to_thread(control, "-i", "on")
        errors = 0
        for _ in range(calls):
            try:
                errors += not await session.call(tool, TOOLS[tool])
            except aiohttp.ServerDisconnectedError:
                # The keep-alive connection idled out while callgrind_control ran (slow on a
                # loaded machine): one new connection, one retry; negligible over N calls.
                errors += not await session.call(tool, TOOLS[tool])
        await asyncio.to_thread(control, "-d")
        await asyncio.to_thread(control, "-i", "off")
        return errors


def _targets(summary: list[tuple[int, float, float]], off: set[str]) -> str:
    """The issue's two numbers in one line: the added p50 of the lowest concurrency (one call
    in flight: the latency an agent sees) and the best calls/s through the one worker."""
    if not summary:
        return ""
    conns, added, _ = min(summary)
    best_conns, _, best_rps = max(summary, key=lambda row: row[2])
    guards = "all guards on" if not off else f"guards off: {', '.join(sorted(off))}"
    return (
        f"issue 21 ({guards}): added p50 {added:+.3f} ms at c={conns} (target <= 1 ms: "
        f"{'met' if added <= 1.0 else 'not met'}); {best_rps:,.0f} calls/s through one worker at "
        f"c={best_conns} (target >= 1,000: {'met' if best_rps >= 1000 else 'not met'})"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--conns", default="1,16", help="comma-separated concurrencies")
    parser.add_argument(
        "--server",
        default="fast",
        choices=("fast", "sdk"),
        help="upstream: bench/mcp_fast_server.py (default) or the crm sample on the mcp SDK's server",
    )
    parser.add_argument("--sse", action="store_true", help="the sdk server answers with SSE streams")
    parser.add_argument("--tool", default="lookup_order", choices=sorted(TOOLS))
    parser.add_argument(
        "--off",
        default="",
        help="comma-separated guards to switch off (limits,policy,redaction,approvals,audit): "
        "what each costs per call is the CPU difference",
    )
    parser.add_argument("--callgrind", type=int, default=0, help="count instructions per call over N calls")
    args = parser.parse_args()
    if os.cpu_count() and os.cpu_count() > 1:  # type: ignore[operator]
        with contextlib.suppress(OSError):
            os.sched_setaffinity(0, {1})  # the load generator shares core 1 with the server
    with mcp_server(args.server, args.sse) as direct_url:
        servers = {"servers": {"crm": {"url": direct_url, "timeout_s": 10}}}
        off = {g for g in args.off.split(",") if g}
        guards = {name: {"enabled": name not in off} for name in GUARDS_ON}
        files = {"mcp.yaml": servers, "limits.yaml": HIGH_LIMITS}
        headers = {"Authorization": f"Bearer {BENCH_KEY}", "X-Agent-Id": "bench", "X-Run-Id": "bench-run"}
        if args.callgrind:
            print(f"guards off: {', '.join(sorted(off)) or 'none'}")
            callgrind(args, files, guards, headers)
            return
        with (
            gateway("http://127.0.0.1:9/v1", guards, extra_files=files) as gw,
            minimal_passthrough(direct_url, app="bench.mcp_floor:app", env="MCP_UPSTREAM") as floor,
        ):
            through_url = gw.url.removesuffix("/v1") + "/mcp/crm"
            floor_url = floor.url.removesuffix("/v1") + "/mcp"
            for url in (
                direct_url,
                floor_url,
                through_url,
            ):  # warm-up (imports, Presidio, the first sessions)
                asyncio.run(drive(url, headers, 4, args.warmup, args.tool))
            answers = "SSE" if args.sse and args.server == "sdk" else "JSON"
            print(
                f"server {args.server}, tool {args.tool}, answers {answers}, {args.seconds:g} s per row, "
                f"guards off: {', '.join(sorted(off)) or 'none'}"
            )
            summary: list[tuple[int, float, float]] = []  # conns, added p50 ms, gateway calls/s
            for conns in (int(c) for c in args.conns.split(",")):
                direct = asyncio.run(drive(direct_url, headers, conns, args.seconds, args.tool))
                hops: dict[str, tuple[Result, float]] = {}
                for name, target, url in (("floor", floor, floor_url), ("gateway", gw, through_url)):
                    cpu0 = cpu_seconds(target.pid)
                    res = asyncio.run(drive(url, headers, conns, args.seconds, args.tool))
                    hops[name] = (res, (cpu_seconds(target.pid) - cpu0) / max(res.calls, 1) * 1e6)
                print(f"c={conns:<3d} direct   {direct.row()}")
                for name, (res, cpu_us) in hops.items():
                    print(f"c={conns:<3d} {name:8s} {res.row()}  cpu {cpu_us:6.0f} µs/call")
                (through, cpu_us), (hop, _) = hops["gateway"], hops["floor"]
                added, floor_added = through.pct(50) - direct.pct(50), hop.pct(50) - direct.pct(50)
                print(
                    f"c={conns:<3d} added    p50 {added:+.3f} ms  p99 {through.pct(99) - direct.pct(99):+.3f} ms  "
                    f"one busy gateway core: {1e6 / max(cpu_us, 1):,.0f} calls/s"
                )
                print(
                    f"c={conns:<3d} floor    added p50 {floor_added:+.3f} ms (the least a proxy hop costs here); "
                    f"gateway's own share (gateway - floor) p50 {added - floor_added:+.3f} ms"
                )
                summary.append((conns, added, through.rps))
                sys.stdout.flush()
            print(_targets(summary, off))
    print(f"load average {os.getloadavg()[0]:.1f} (numbers are noisy above the core count)")


if __name__ == "__main__":
    main()
