"""``/metrics`` of ``wardgate serve --workers 2`` is the deployment's, not each worker's.

Real child-process gateways with ``PROMETHEUS_MULTIPROC_DIR``: no throwaway probe series,
the redaction cache counters present (they were read at scrape time, which a multiprocess
scrape never does), one ``wardgate_approvals_pending`` series (not one per worker), one
``wardgate_circuit_state`` per deployment, nothing left from an earlier run's processes, and
the live gauges of a worker that was killed gone once the supervisor replaces it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import httpx
import openai
from cryptography.fernet import Fernet

from tests.harness import REPO, TEST_KEY, GatewayProcess, gateway_settings
from tests.waiting import wait_until

_DEAD_PROCESS = """
from prometheus_client import Counter, Gauge
Counter("wardgate_requests", "x", ["endpoint", "model", "status"]).labels("chat.completions", "gpt-test", "200").inc(1000)
Gauge("wardgate_stale_marker", "x", multiprocess_mode="all").set(7)
Gauge("wardgate_connections_open", "x", multiprocess_mode="livesum").set(500)
"""

_TWO_WORKERS_ONE_PENDING = """
import sys
from prometheus_client import CollectorRegistry
from gateway.approvals.metrics import ApprovalMetrics
from gateway.observability.metrics import render
if sys.argv[1] == "write":
    ApprovalMetrics(CollectorRegistry()).pending.set(1)  # each worker reads the same store count
else:
    sys.stdout.write(render(CollectorRegistry()).decode())
"""


def _until(check: Any, timeout_s: float = 20.0) -> Any:
    """``check()``'s first truthy value, or its last value after ``timeout_s`` (the caller asserts)."""
    try:
        return wait_until(check, within=timeout_s, interval=0.1)
    except TimeoutError:
        return check()


def _samples(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith(name + " ") or line.startswith(name + "{")]


def _livesum_pids(prom: Path) -> set[int]:
    return {int(p.stem.rsplit("_", 1)[1]) for p in prom.glob("gauge_livesum_*.db")}


def test_two_workers_export_one_deployment(fake_upstream: Any, tmp_path: Path) -> None:
    prom = tmp_path / "prom"
    prom.mkdir()
    env = {"PROMETHEUS_MULTIPROC_DIR": str(prom), "PYTHONPATH": str(REPO)}
    # An earlier run's process that died without cleaning up (a crash, a SIGKILL'd pod).
    subprocess.run([sys.executable, "-c", _DEAD_PROCESS], env={**os.environ, **env}, check=True, cwd=REPO)
    assert len(list(prom.glob("*.db"))) == 3
    settings = gateway_settings(
        tmp_path / "gw",
        fake_upstream.base_url,
        server={"workers": 2},
        limits={"enabled": False},
        policy={"enabled": False},
        audit={"enabled": False},
        approvals={"backend": "redis", "key_prefix": f"wgm{uuid.uuid4().hex[:8]}"},
    )
    proc = GatewayProcess(
        settings.model_dump(mode="json"),
        tmp_path,
        env={**env, "WARDGATE_APPROVALS_KEY": Fernet.generate_key().decode()},
    )
    proc.start(timeout_s=120)
    try:
        assert _until(lambda: len(_livesum_pids(prom)) == 2, timeout_s=120), "both workers up"
        client = openai.OpenAI(base_url=proc.base_url, api_key=TEST_KEY, max_retries=0)
        for i in range(6):  # spread over both workers; repeats hit the analysis cache
            text = f"mail jane.doe{i % 2}@example.com about it"
            client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": text}])

        def scrape() -> str:
            return httpx.get(f"{proc.url}/metrics", timeout=10).text

        def cache_counted() -> str | None:
            text = scrape()
            misses = _samples(text, "wardgate_redaction_cache_misses_total")
            return text if misses and float(misses[0].split()[-1]) > 0 else None

        text = _until(cache_counted, timeout_s=10)
        assert text, scrape()
        assert len(_samples(text, "wardgate_redaction_cache_hits_total")) == 1
        assert len(_samples(text, "wardgate_redaction_cache_entries")) == 1
        assert not re.search(r"^(probe|wardgate_internal_fastpath_probe)", text, re.M), "probe series"
        # The earlier run's values are gone: the master emptied the directory before the workers.
        assert "wardgate_stale_marker" not in text
        requests = _samples(text, "wardgate_requests_total")
        assert sum(float(line.split()[-1]) for line in requests) == 6.0, requests
        # One series for the deployment, not one per worker (no pid label).
        pending = _samples(text, "wardgate_approvals_pending")
        assert pending == ["wardgate_approvals_pending 0.0"], pending
        circuits = _samples(text, "wardgate_circuit_state")
        assert circuits and all('pid="' not in c and c.endswith(" 0.0") for c in circuits), circuits
        assert {re.search(r'deployment="([^"]+)"', c).group(1) for c in circuits} >= {"mock-chat#0"}  # type: ignore[union-attr]

        # A worker killed outright: the supervisor replaces it and drops its live gauges.
        victim = min(_livesum_pids(prom))
        os.kill(victim, signal.SIGKILL)
        assert _until(lambda: victim not in _livesum_pids(prom) and len(_livesum_pids(prom)) == 2, 120), (
            _livesum_pids(prom),
            proc.logs()[-2000:],
        )
    finally:
        proc.stop()


def test_one_pending_approval_reads_one_with_two_workers(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    for _ in range(2):
        subprocess.run(
            [sys.executable, "-c", _TWO_WORKERS_ONE_PENDING, "write"], env=env, check=True, cwd=REPO
        )
    out = subprocess.run(
        [sys.executable, "-c", _TWO_WORKERS_ONE_PENDING, "read"],
        env=env,
        check=True,
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout
    assert _samples(out, "wardgate_approvals_pending") == ["wardgate_approvals_pending 1.0"], out
