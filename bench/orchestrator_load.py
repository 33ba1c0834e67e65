"""The orchestrator's load mode against one gateway worker with every guard on, with CPU accounting.

    .venv/bin/python bench/orchestrator_load.py [--seconds 60] [--concurrency 3] [--warmup 20]

The gateway (one uvicorn worker, embedded defaults: in-memory limits, Presidio redaction,
embedded Rego, the approval queue, SQLite audit) is pinned to core 0, the load generator (the
orchestrator driving full support runs through the openai SDK, ``--processes`` of them) to
the other cores, so each side's CPU per call is its own. Prints the load report plus gateway and client CPU per call and the
calls/min one fully busy gateway core would sustain at that cost.
Target (issue 9): >= 10,000 model calls/min for 60 s, p99 per call <= 50 ms, no errors other
than the scenario's intended denials.

``--cache``: the response cache on (memory store) and the orchestrator's team caching every
call (``cache: {always: true}``); adds the hit ratio and the USD the hits saved.

``--gateway-command`` serves the gateway with another command (``{port}``/``{python}`` are
filled in; default ``{python} -m gateway serve ...``).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
import orjson
import yaml

from bench.common import cpu_seconds
from orchestrator import eventloop
from orchestrator.config import LOAD_CONCURRENCY, AgentConfig, load_config
from orchestrator.load import run_load
from orchestrator.local_gateway import LocalGateway


def _client_cpu() -> float:
    """This process and its finished children (the load processes; the gateway is still running)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


async def _admin(gateway: LocalGateway, method: str, path: str) -> object:
    async with httpx.AsyncClient(timeout=60) as client:
        r = await client.request(
            method, gateway.url + path, headers={"authorization": f"Bearer {gateway.keys.admin}"}
        )
        r.raise_for_status()
        return r.json()


async def _cache_always(gateway: LocalGateway, workdir: Path) -> None:
    """The orchestrator's requests are not deterministic by their parameters: its team accepts
    reused answers (``cache: {always: true}``, rego/request.rego), loaded by a policy reload."""
    path = workdir / "policies" / "policy.yaml"
    doc = yaml.safe_load(path.read_text())
    doc.setdefault("defaults", {})["cache"] = {"always": True}
    path.write_text(yaml.safe_dump(doc))
    await _admin(gateway, "POST", "/admin/policies/reload")


async def _cache_report(gateway: LocalGateway) -> object:
    """Hit ratio and what the hits saved, from the spend report (whole run, warm-up included)."""
    report = await _admin(gateway, "GET", "/admin/spend/report?group_by=agent&window=1h")
    return report["total"]["cache"] if isinstance(report, dict) else None


async def main(args: argparse.Namespace) -> dict[str, object]:
    cores = os.cpu_count() or 1
    pin = bool(shutil.which("taskset")) and cores > 1 and not args.no_pin
    if pin:
        os.sched_setaffinity(0, set(range(1, cores)))  # the load processes inherit it
    command = args.gateway_command or "{python} -m gateway serve --host 127.0.0.1 --port {port}"
    if pin:
        command = "taskset -c 0 " + command
    workdir = Path(tempfile.mkdtemp(prefix="wardgate-bench-"))
    gateway = LocalGateway(workdir, approval_mode="defer", command=command, load=True)
    try:
        if args.cache:
            gateway.extra_config["cache"] = {"enabled": True}
        await gateway.start()
        if args.cache:
            await _cache_always(gateway, workdir)
        config = load_config(
            base_url=gateway.base_url,
            admin_key=gateway.keys.admin,
            model="mock-chat",
            db_path=str(workdir / "orchestrator.db"),
            max_concurrency=4,
            approval_poll_s=0.05,
            agents={a: AgentConfig(key=k) for a, k in gateway.keys.agents.items()},
        )
        if args.warmup:
            await run_load(config, runs=args.warmup, concurrency=args.concurrency, processes=args.processes)
        assert gateway.proc is not None
        gw0, cl0 = cpu_seconds(gateway.proc.pid), _client_cpu()
        result = await run_load(
            config, runs=0, concurrency=args.concurrency, duration_s=args.seconds, processes=args.processes
        )
        gw_cpu, cl_cpu = cpu_seconds(gateway.proc.pid) - gw0, _client_cpu() - cl0
        if args.cache:
            result["cache"] = await _cache_report(gateway)
    finally:
        gateway.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    calls = max(int(result["calls"]), 1)  # type: ignore[call-overload]
    result["gateway_cpu_us_per_call"] = round(gw_cpu / calls * 1e6)
    result["gateway_cpu_busy"] = round(gw_cpu / float(result["elapsed_s"]), 2)  # type: ignore[arg-type]
    result["client_cpu_us_per_call"] = round(cl_cpu / calls * 1e6)
    result["calls_per_min_at_one_busy_gateway_core"] = round(60 / (gw_cpu / calls)) if gw_cpu else None
    result["pinned"] = bool(pin)
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--concurrency", type=int, default=LOAD_CONCURRENCY, help="runs in flight")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--processes", type=int, default=1, help="load-generating processes")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the gateway to core 0")
    parser.add_argument("--gateway-command", default=None)
    parser.add_argument(
        "--cache", action="store_true", help="response cache on (memory), every call cacheable"
    )
    out = eventloop.run(main(parser.parse_args()))
    sys.stdout.write(orjson.dumps(out, option=orjson.OPT_INDENT_2).decode() + "\n")
