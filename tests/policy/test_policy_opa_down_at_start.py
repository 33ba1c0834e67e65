"""OPA down at start: like every other dependency (issue 19), not a refused policy set.

The gateway starts with ``policy.engine: opa`` pointing at a port nothing listens on: ``/readyz``
is 503 naming OPA's address, a call fails closed (503 ``policy_unavailable``; with
``fail_open`` it is served, as the setting says), and once an OPA server appears on that port
the gateway pushes the policy set to it by itself and is ready (no restart): the server holds
the modules and calls are decided by it. The server is the OPA-REST test server (the real OPA
engine), started late on the chosen port.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness import free_port, gateway_settings, hello_chat, readiness, running_gateway
from tests.opa_server import OpaServer
from tests.waiting import wait_until


@pytest.fixture
def late_opa() -> Iterator[OpaServer]:
    server = OpaServer(port=free_port())
    try:
        yield server
    finally:
        if server._thread is not None:
            server.stop()


@pytest.mark.parametrize("fail_open", [False, True])
def test_opa_down_at_start_is_not_ready_fails_per_settings_and_recovers(
    tmp_path: Path, upstream: Any, late_opa: OpaServer, fail_open: bool
) -> None:
    policy = {"engine": "opa", "opa_url": late_opa.url, "timeout_ms": 2000, "fail_open": fail_open}
    settings = gateway_settings(
        tmp_path, upstream.base_url, policy=policy, limits={"enabled": False}, audit={"enabled": False}
    )
    with running_gateway(settings) as gw:
        status, checks = readiness(gw.url)
        assert status == 503 and f"127.0.0.1:{late_opa.port}" in checks["policy"], checks
        down = hello_chat(gw.url)
        if fail_open:
            assert down.status_code == 200, down.text
        else:
            assert down.status_code == 503 and down.json()["error"]["code"] == "policy_unavailable", down.text
            assert upstream.requests == []  # refused before forwarding

        late_opa.start()
        wait_until(lambda: readiness(gw.url)[0] == 200, within=20, interval=0.1, message="OPA never taken up")
        assert any(pid.startswith("wardgate/") for pid in late_opa.store.policies)
        served = late_opa.requests
        ok = hello_chat(gw.url)
        assert ok.status_code == 200, ok.text
        assert late_opa.requests > served  # decided by the server that came back
        assert ok.headers.get("x-wardgate-policy-revision")
