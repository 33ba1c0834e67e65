"""``python -m orchestrator load``: many concurrent support runs through one gateway.

The seed's "works at 100 req/min, breaks at 10,000 req/min" as a repeatable workload: every
run is the full scenario (planner, four workers with tools, reviewer, a policy denial and a
refund approval decided by an automatic reviewer), checkpointed like any run. The numbers
are per HTTP exchange with the gateway as the client sees them (the openai SDK included):
runs/min, calls/min, latency percentiles, refusals by code, approvals, errors, and the cost
the gateway's audit log recorded. Calls held open for a human (``hold`` approvals) are left
out of the latency percentiles, because they measure the reviewer, not the gateway. Beside
them, ``generator_loop_lag_ms`` says how late the generator's own event loop ran (its share
of those latencies: reported, never subtracted).
"""

from __future__ import annotations

import asyncio
import gc
import math
import multiprocessing
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator import eventloop
from orchestrator.admin_client import AdminClient
from orchestrator.approver import AutoApprover
from orchestrator.config import OrchestratorConfig
from orchestrator.events import CallRecord, Listener
from orchestrator.identity import new_run_id
from orchestrator.scenario import get_scenario
from orchestrator.service import Orchestrator

#: Refusals the scenario means to cause; anything else that is not a 200 counts as an error.
INTENDED = frozenset({(403, "policy_denied"), (409, "approval_pending")})


def percentile(values: list[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def _percentiles_ms(values: list[float]) -> dict[str, float]:
    return {
        name: round(percentile(values, q) * 1000, 2)
        for name, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))
    }


async def probe_loop(lags: list[float], stop: asyncio.Event, every_s: float = 0.01) -> None:
    """Record how late this event loop wakes from a ``sleep(every_s)`` until ``stop`` is set.

    A call's latency is measured when its answer is processed, so a busy (or descheduled)
    generator inflates it; this says by how much, without taking it out of the latency.
    """
    while not stop.is_set():
        started = time.perf_counter()
        await asyncio.sleep(every_s)
        lags.append(max(0.0, time.perf_counter() - started - every_s))


@dataclass
class LoadStats(Listener):
    latencies: list[float] = field(default_factory=list)
    #: How late the generator's own event loop woke up (``probe_loop``): the share of a call's
    #: latency that is the client's, not the gateway's.
    loop_lags: list[float] = field(default_factory=list)
    held: int = 0
    outcomes: Counter[tuple[int | None, str | None]] = field(default_factory=Counter)
    runs: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None

    def call_finished(self, record: CallRecord) -> None:
        self.outcomes[(record.status, record.code)] += 1
        if record.approval and record.approval.get("mode") == "hold":
            self.held += 1
        else:
            self.latencies.append(record.latency_s)

    def reset(self) -> None:
        """Forget what was measured so far (after a warm-up)."""
        self.latencies.clear()
        self.loop_lags.clear()
        self.held = 0
        self.outcomes.clear()
        self.runs.clear()
        self.started = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    def summary(self) -> dict[str, Any]:
        calls = sum(self.outcomes.values())
        minutes = self.elapsed / 60
        errors = {
            f"{s} {c or ''}".strip(): n
            for (s, c), n in self.outcomes.items()
            if s != 200 and (s, c) not in INTENDED
        }
        return {
            "elapsed_s": round(self.elapsed, 2),
            "runs": dict(self.runs),
            "runs_per_min": round(sum(self.runs.values()) / minutes, 1) if minutes else 0.0,
            "calls": calls,
            "calls_per_min": round(calls / minutes, 1) if minutes else 0.0,
            "latency_ms": _percentiles_ms(self.latencies),
            "generator_loop_lag_ms": _percentiles_ms(self.loop_lags),
            "held_calls_excluded": self.held,
            "policy_denials": self.outcomes[(403, "policy_denied")],
            "approvals_deferred": self.outcomes[(409, "approval_pending")],
            "errors": errors,
        }

    def wire(self) -> dict[str, Any]:
        """What a load process sends back to the parent (picklable)."""
        return {
            "latencies": self.latencies,
            "loop_lags": self.loop_lags,
            "held": self.held,
            "outcomes": list(self.outcomes.items()),
            "runs": dict(self.runs),
            "elapsed": self.elapsed,
        }

    def merge(self, wire: dict[str, Any]) -> None:
        self.latencies.extend(wire["latencies"])
        self.loop_lags.extend(wire["loop_lags"])
        self.held += wire["held"]
        for key, n in wire["outcomes"]:
            self.outcomes[tuple(key)] += n
        self.runs.update(wire["runs"])


async def run_load(
    config: OrchestratorConfig,
    *,
    runs: int,
    concurrency: int,
    duration_s: float | None = None,
    warmup_runs: int = 0,
    processes: int = 1,
) -> dict[str, Any]:
    """Run ``runs`` scenarios (or as many as fit in ``duration_s``), ``concurrency`` at a time.

    With ``processes`` > 1 the runs are spread over that many processes (for gateways with
    several workers: one client process, at ~1.5 ms of CPU per call with the openai SDK, keeps
    up with about one gateway worker); the automatic reviewer and the cost query stay here.
    """
    load_id = new_run_id().replace("run-", "load-")
    admin = AdminClient(config.base_url, config.admin_key)
    approver = AutoApprover(admin, run_prefix=load_id, poll_s=0.05)
    stop = asyncio.Event()
    approving = asyncio.create_task(approver.run(stop))
    stats = LoadStats()
    since = datetime.now(UTC).isoformat()
    try:
        if processes <= 1:
            wires = [await _measure(config, load_id, runs, concurrency, duration_s, warmup_runs)]
        else:
            loop = asyncio.get_running_loop()
            with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn")) as pool:
                wires = await asyncio.gather(
                    *(
                        loop.run_in_executor(
                            pool,
                            _child,
                            config.model_dump(),
                            f"{load_id}-p{i}",
                            _share(runs, processes, i),
                            _share(concurrency, processes, i),
                            duration_s,
                            _share(warmup_runs, processes, i),
                        )
                        for i in range(processes)
                    )
                )
        for wire in wires:
            stats.merge(wire)
        stats.finished = stats.started + max(w["elapsed"] for w in wires)
    finally:
        stop.set()
        await approving
    result = stats.summary()
    result.update(
        load_id=load_id, concurrency=concurrency, processes=processes, approvals_decided=len(approver.decided)
    )
    if approver.unavailable:
        result["approvals_note"] = approver.unavailable
    spend = await admin.spend("agent", **{"from": since})
    result["cost_usd"] = (spend.get("total") or {}).get("cost_usd") if isinstance(spend, dict) else None
    if not isinstance(spend, dict):
        result["cost_note"] = getattr(spend, "reason", "")
    await admin.close()
    return result


def _share(total: int, parts: int, index: int) -> int:
    return total // parts + (1 if index < total % parts else 0)


def _child(
    config: dict[str, Any],
    load_id: str,
    runs: int,
    concurrency: int,
    duration_s: float | None,
    warmup_runs: int,
) -> dict[str, Any]:
    cfg = OrchestratorConfig.model_validate(config)
    return eventloop.run(_measure(cfg, load_id, runs, max(concurrency, 1), duration_s, warmup_runs))


async def _measure(
    config: OrchestratorConfig,
    load_id: str,
    runs: int,
    concurrency: int,
    duration_s: float | None,
    warmup_runs: int,
) -> dict[str, Any]:
    stats = LoadStats()
    async with Orchestrator(config, listener=stats) as orch:
        if warmup_runs:
            await _drive(orch, load_id + "-warm", warmup_runs, concurrency, None, stats)
            stats.reset()
        # What is loaded by now (the SDK, pydantic schemas, the scenario) lives as long as the
        # process: out of the cyclic GC's sight, a full collection pauses the loop for ~3 ms
        # instead of ~50 ms, and every call in flight would wait that pause out.
        gc.collect()
        gc.freeze()
        done = asyncio.Event()
        probe = asyncio.create_task(probe_loop(stats.loop_lags, done))
        try:
            await _drive(orch, load_id, runs, concurrency, duration_s, stats)
        finally:
            done.set()
            await probe
    stats.finished = time.perf_counter()
    return stats.wire()


async def _drive(
    orch: Orchestrator, load_id: str, runs: int, concurrency: int, duration_s: float | None, stats: LoadStats
) -> None:
    deadline = time.monotonic() + duration_s if duration_s else None
    counter = iter(range(10**9))

    async def lane() -> None:
        while True:
            i = next(counter)
            if (deadline is None and i >= runs) or (deadline is not None and time.monotonic() >= deadline):
                return
            try:
                report = await orch.start(
                    get_scenario("support"), run_id=f"{load_id}-{i:06d}", parent_run_id=load_id
                )
                stats.runs[report.status] += 1
            except Exception as exc:  # one broken run is a data point, not the end of the load
                stats.runs[f"crashed: {type(exc).__name__}"] += 1

    await asyncio.gather(*(lane() for _ in range(concurrency)))
