"""regorus engines are built and dropped on one thread: reloads and a stop leak none.

regorus objects are pyo3 ``unsendable``: dropped on another thread than their builder's they
are leaked (and pyo3 prints a warning). A gateway's engines live on its event loop thread;
these tests check that a stopped gateway leaves none behind for another thread to collect.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from gateway.policy.engines.embedded import RegorusEngine, RegorusSnapshot
from tests.policy.helpers_policy import REPO

RELOADS = 12
ALLOW = 'package t\n\nallow if input.user == "ann"\n'


def test_a_gateway_reloaded_and_stopped_leaves_no_engine_for_another_thread() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "tests.policy.engine_threads_scenario", str(RELOADS)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "unsendable" not in done.stderr, done.stderr[-3000:]
    assert "Exception ignored" not in done.stderr, done.stderr[-3000:]
    counts = json.loads(done.stdout.strip().splitlines()[-1])
    # One live interpreter per gateway whatever the number of reloads: each old one is freed.
    assert counts["after_reload"] == [1] * RELOADS
    # Stopped: none left, so nothing is dropped later by the thread that collects the gateway.
    assert counts["after_stop"] == 0 and counts["at_end"] == 0


async def test_close_releases_a_snapshot_a_call_still_holds() -> None:
    engine = RegorusEngine()
    await engine.load({"t.rego": ALLOW}, {})
    held = engine.snapshot()  # as a call in flight (or a reference cycle) would hold it
    assert isinstance(held, RegorusSnapshot)
    await engine.load({"t.rego": ALLOW + "\nreload := 1\n"}, {})
    assert held.holds_native and engine.snapshot().holds_native  # type: ignore[attr-defined]
    await engine.close()
    assert not held.holds_native
    # Still answers (fail-safe), with an engine built and dropped for that one evaluation.
    assert held.evaluate_sync("data.t.allow", '{"user": "ann"}') is True
    assert not held.holds_native
