"""MCP ``tools/list`` of 100 tools through ``/mcp/{server}``: what guarding the listed texts costs.

    .venv/bin/python bench/mcp_list.py [--seconds 4] [--tools 100] [--before /work/main]

A lean upstream (this file with ``--serve``, aiohttp, JSON answers) lists ``--tools`` tools,
each with a ~200-character description and a three-parameter input schema (descriptions,
an enum, a default): ``/mcp`` the same list every time (``stable``: the gateway's clean-item
cache answers after the first), ``/vary`` a new counter in every description on every call
(``vary``: every item scanned every time, the cost of a first listing). One gateway at a time
(one worker, every guard on, pinned to core 0; the server and this client share core 1):
this checkout with redaction on and off, and ``--before``'s checkout (the code before the
listed texts were guarded) when given. Printed per gateway and server: lists/s at one list
in flight, p50, the added p50 against the server directly, and the gateway's CPU per list.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import orjson
import yaml

from bench.common import BENCH_KEY, REPO, cpu_seconds, free_port, gateway, pinned, wait_http
from bench.mcp import GUARDS_ON, HIGH_LIMITS, Connection

DESCRIPTION = (
    "Looks up one {kind} record by its id and returns its status, the dates it changed, the "
    "items it holds and the notes support agents left on it. Read-only; call it before acting. {n}"
)


def tool(i: int, n: int) -> dict[str, Any]:
    return {
        "name": f"lookup_{i}",
        "description": DESCRIPTION.format(kind=f"kind{i}", n=n),
        "inputSchema": {
            "type": "object",
            "properties": {
                "record_id": {"type": "string", "description": "The record's id, as shown in the list."},
                "detail": {"type": "string", "enum": ["summary", "full"], "default": "summary"},
                "limit": {"type": "integer", "description": "At most this many notes.", "default": 10},
            },
            "required": ["record_id"],
        },
    }


def serve(port: int, count: int) -> None:
    from aiohttp import web

    stable = [tool(i, 0) for i in range(count)]
    counter = itertools.count(1)

    async def rpc(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        if "id" not in body:
            return web.Response(status=202)
        method = body.get("method")
        headers = {"mcp-session-id": "s1"}
        if method == "initialize":
            result: Any = {
                "protocolVersion": body["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "bench-list", "version": "1"},
            }
        elif method == "tools/list":
            n = next(counter)
            result = {"tools": stable if request.path == "/mcp" else [tool(i, n) for i in range(count)]}
        else:
            result = {}
        answer = orjson.dumps({"jsonrpc": "2.0", "id": body["id"], "result": result})
        return web.Response(body=answer, content_type="application/json", headers=headers)

    async def root(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/mcp", rpc)
    app.router.add_post("/vary", rpc)
    app.router.add_get("/", root)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


@contextlib.contextmanager
def upstream(count: int) -> Iterator[str]:
    port = free_port()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--serve", str(port), "--tools", str(count)]
    proc = subprocess.Popen(pinned(cmd, 1), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/", timeout=60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


async def lists(url: str, headers: dict[str, str], seconds: float, expect: int) -> list[float]:
    async with aiohttp.ClientSession() as http:
        conn = Connection(http, url, headers)
        await conn.open()
        latencies: list[float] = []
        stop = time.perf_counter() + seconds
        ids = itertools.count(1)
        while time.perf_counter() < stop:
            t0 = time.perf_counter()
            status, answer = await conn.post({"jsonrpc": "2.0", "id": next(ids), "method": "tools/list"})
            latencies.append((time.perf_counter() - t0) * 1000)
            shown = len(answer.get("result", {}).get("tools", []))
            if status != 200 or shown != expect:
                raise RuntimeError(f"tools/list: HTTP {status}, {shown} tools of {expect}")
        return latencies


def p50(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--tools", type=int, default=100)
    parser.add_argument("--before", default="", help="a checkout to run as 'before' (e.g. /work/main)")
    parser.add_argument("--serve", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.tools)
        return
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, {1})
    headers = {"Authorization": f"Bearer {BENCH_KEY}", "X-Agent-Id": "bench", "X-Run-Id": "bench-run"}
    policy = yaml.safe_load((REPO / "policies" / "policy.yaml").read_text())
    names = [f"lookup_{i}" for i in range(args.tools)]  # exact names, as the shipped lists are
    policy["mcp"] = {"servers": {name: {"tools": names} for name in ("stable", "vary")}}
    with upstream(args.tools) as base:
        servers = {"servers": {"stable": {"url": base + "/mcp"}, "vary": {"url": base + "/vary"}}}
        files = {"mcp.yaml": servers, "limits.yaml": HIGH_LIMITS, "policy.yaml": policy}
        direct = {
            s: p50(asyncio.run(lists(base + path, headers, args.seconds, args.tools)))
            for s, path in (("stable", "/mcp"), ("vary", "/vary"))
        }
        runs = [("after", REPO, set()), ("after, redaction off", REPO, {"redaction"})]
        if args.before:
            runs.insert(0, ("before", Path(args.before), set()))
        print(f"{args.tools} tools per list, {args.seconds:g} s per row, one list in flight")
        for label, code, off in runs:
            guards = {name: {"enabled": name not in off} for name in GUARDS_ON}
            with gateway("http://127.0.0.1:9/v1", guards, extra_files=files, code=code) as gw:
                root = gw.url.removesuffix("/v1")
                asyncio.run(lists(root + "/mcp/stable", headers, 1.0, args.tools))  # warm-up
                for server in ("stable", "vary"):
                    cpu0 = cpu_seconds(gw.pid)
                    through = asyncio.run(lists(f"{root}/mcp/{server}", headers, args.seconds, args.tools))
                    cpu_us = (cpu_seconds(gw.pid) - cpu0) / len(through) * 1e6
                    print(
                        f"{label:<22} {server:<6} {len(through) / args.seconds:7.0f} lists/s  "
                        f"p50 {p50(through):7.2f} ms  added {p50(through) - direct[server]:+7.2f} ms  "
                        f"cpu {cpu_us:7.0f} µs/list"
                    )
                    sys.stdout.flush()
    print(f"load average {os.getloadavg()[0]:.1f} (numbers are noisy above the core count)")


if __name__ == "__main__":
    main()
