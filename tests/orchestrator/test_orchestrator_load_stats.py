"""Load mode's bookkeeping: what counts as an error, which latencies count, the loop probe."""

from __future__ import annotations

import asyncio
import time

from orchestrator.events import CallRecord
from orchestrator.load import LoadStats, probe_loop


def _call(
    status: int, code: str | None = None, latency_s: float = 0.01, mode: str | None = None
) -> CallRecord:
    record = CallRecord(
        agent="billing", run_id="run-1", model="mock-chat", status=status, code=code, latency_s=latency_s
    )
    if mode:
        record.approval = {"id": "apr-1", "outcome": "approved", "mode": mode}
    return record


def test_intended_refusals_are_not_errors_and_held_calls_stay_out_of_the_latencies():
    stats = LoadStats()
    for record in (
        _call(200, latency_s=0.004),
        _call(403, "policy_denied", 0.002),
        _call(409, "approval_pending", 0.003),
        _call(200, latency_s=30.0, mode="hold"),
        _call(429, "rate_limited", 0.001),
        _call(200, latency_s=0.005, mode="defer"),
    ):
        stats.call_finished(record)
    out = stats.summary()
    assert out["calls"] == 6
    assert out["errors"] == {"429 rate_limited": 1}
    assert (out["policy_denials"], out["approvals_deferred"], out["held_calls_excluded"]) == (1, 1, 1)
    assert out["latency_ms"]["max"] == 5.0  # the 30 s held call is not a gateway latency


def test_the_probe_sees_the_generator_block_its_own_loop():
    async def main() -> list[float]:
        lags: list[float] = []
        stop = asyncio.Event()
        probe = asyncio.create_task(probe_loop(lags, stop, every_s=0.005))
        await asyncio.sleep(0.02)
        time.sleep(0.06)  # noqa: ASYNC251 - the generator hogging its own loop, as a CPU-bound client does
        await asyncio.sleep(0.02)
        stop.set()
        await probe
        return lags

    lags = asyncio.run(main())
    assert max(lags) >= 0.04
    assert LoadStats(loop_lags=lags).summary()["generator_loop_lag_ms"]["max"] >= 40
