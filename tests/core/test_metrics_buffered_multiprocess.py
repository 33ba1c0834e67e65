"""Multiprocess metric values are written in batches (``gateway/observability/buffered.py``)
and nothing is lost: every worker's values reach the shared files within the flush delay
without any scrape, a scrape shows its own worker's values exactly, a clean stop writes the
last ones, and changes from several threads all count.

Real ``wardgate serve --workers 2`` with ``PROMETHEUS_MULTIPROC_DIR``, called with the openai
SDK; the files are read the way another worker's scrape reads them (prometheus-client's
``MultiProcessCollector``), never through the worker itself.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector

from tests.harness import PASS_THROUGH, REPO, TEST_KEY, GatewayProcess, gateway_settings
from tests.waiting import wait_until


def _requests_in_files(prom: Path) -> float:
    """``wardgate_requests_total`` summed over every process's file, as a scrape merges them."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(prom))
    total = 0.0
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == "wardgate_requests_total":
                total += sample.value
    return total


def test_two_workers_values_reach_the_files_and_survive_a_clean_stop(
    fake_upstream: Any, tmp_path: Path
) -> None:
    prom = tmp_path / "prom"
    prom.mkdir()
    settings = gateway_settings(
        tmp_path / "gw", fake_upstream.base_url, server={"workers": 2}, **PASS_THROUGH
    )
    proc = GatewayProcess(
        settings.model_dump(mode="json"), tmp_path, env={"PROMETHEUS_MULTIPROC_DIR": str(prom)}
    )
    proc.start(timeout_s=120)
    try:
        client = openai.OpenAI(base_url=proc.base_url, api_key=TEST_KEY, max_retries=0)
        for _ in range(8):  # new connections: spread over both workers
            client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "hi"}])
            client.close()
            client = openai.OpenAI(base_url=proc.base_url, api_key=TEST_KEY, max_retries=0)
        # No scrape asks the workers for anything: their own flushes put every call in the files.
        wait_until(lambda: _requests_in_files(prom) == 8.0, within=10, interval=0.05)
        for _ in range(3):
            client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "hi"}])
    finally:
        proc.stop(timeout_s=60)
    assert proc.proc is not None and proc.proc.returncode == 0, proc.logs()[-2000:]
    assert _requests_in_files(prom) == 11.0  # the calls answered just before the stop too


_THREADS = r"""
import asyncio, sys, threading
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.multiprocess import MultiProcessCollector
from gateway.observability import buffered
from gateway.observability.metrics import render

def in_files(name):
    reg = CollectorRegistry()
    MultiProcessCollector(reg)
    return sum(s.value for f in reg.collect() for s in f.samples if s.name == name)

async def main():
    detach = buffered.attach(asyncio.get_running_loop())
    assert buffered.install(), "multiprocess values are buffered"
    counter = Counter("t_calls", "x", ["who"], registry=None)
    gauge = Gauge("t_level", "x", multiprocess_mode="mostrecent", registry=None)
    def work(who):
        for _ in range(5000):
            counter.labels(who).inc()
    threads = [threading.Thread(target=work, args=(str(i % 2),)) for i in range(4)]
    for t in threads: t.start()
    work("loop")
    for t in threads: t.join()
    gauge.set(7)
    # A scrape of this worker flushes first: its own values exactly.
    text = render(CollectorRegistry()).decode()
    assert 't_calls_total{who="loop"} 5000.0' in text, text
    assert "t_level 7.0" in text, text
    counter.labels("loop").inc(2)
    await asyncio.sleep(buffered.FLUSH_DELAY_S * 5)  # the loop's own flush, no scrape
    assert in_files("t_calls_total") == 25002.0, in_files("t_calls_total")
    counter.labels("loop").inc(3)
    detach()  # the app's stop: what is left is written, then values are written through
    assert in_files("t_calls_total") == 25005.0
    counter.labels("loop").inc(1)
    assert in_files("t_calls_total") == 25006.0
    sys.stdout.write("ok")

asyncio.run(main())
"""


def test_changes_from_every_thread_count_and_detach_writes_the_rest(tmp_path: Path) -> None:
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-c", _THREADS], env=env, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0 and out.stdout == "ok", out.stderr[-3000:]
