"""Open connections and calls in flight are exported in Prometheus multiprocess mode too.

The gauges read their value when scraped, which a multiprocess scrape (``/metrics`` merging
the workers' files under ``PROMETHEUS_MULTIPROC_DIR``) never does: they were missing. Two
workers, idle keep-alive connections spread over them: ``/metrics`` shows their sum, and it
falls when they close.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from tests import raw_http
from tests.harness import PASS_THROUGH, GatewayProcess, gateway_settings
from tests.waiting import wait_until


def _gauge(url: str, name: str) -> float | None:
    text = httpx.get(f"{url}/metrics", timeout=5).text
    found = re.search(rf"^{name} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else None


def _until(check: Any, timeout_s: float = 10.0) -> Any:
    """``check()``'s first truthy value, or its last value after ``timeout_s`` (the caller asserts)."""
    try:
        return wait_until(check, within=timeout_s, interval=0.05)
    except TimeoutError:
        return check()


def test_connection_gauges_are_summed_over_the_workers(fake_upstream: Any, tmp_path: Path) -> None:
    prom = tmp_path / "prom"
    prom.mkdir()
    settings = gateway_settings(
        tmp_path / "gw",
        fake_upstream.base_url,
        server={"workers": 2, "keepalive_timeout_s": 60},
        **PASS_THROUGH,
    )
    proc = GatewayProcess(
        settings.model_dump(mode="json"), tmp_path, env={"PROMETHEUS_MULTIPROC_DIR": str(prom)}
    )
    proc.start()
    socks = []
    try:
        for _ in range(8):  # idle keep-alive connections, each answered once (so accepted, tracked)
            sock = raw_http.connect(proc.url)
            sock.sendall(raw_http.head("GET", "/healthz"))
            assert raw_http.read_response(sock).status == 200
            socks.append(sock)
        # the 8 idle connections (the scrape's own is counted once a sweep has seen it)
        assert _until(lambda: (_gauge(proc.url, "wardgate_connections_open") or 0) >= 8), _gauge(
            proc.url, "wardgate_connections_open"
        )
        assert _gauge(proc.url, "wardgate_calls_in_flight") == 0.0
        # one file per worker, summed (the second worker may still be booting on a loaded machine)
        assert _until(lambda: len(list(prom.glob("gauge_livesum_*.db"))) == 2, timeout_s=60)
        for sock in socks:
            sock.close()
        assert _until(lambda: (_gauge(proc.url, "wardgate_connections_open") or 99) <= 2)
    finally:
        for sock in socks:
            sock.close()
        proc.stop()
