"""Redis down at start: every component that needs it behaves the same.

Limits, approvals and keys on a Redis that is not running yet: the gateway starts, ``/readyz``
is 503 naming each component and the server it cannot reach, calls fail closed, and once
Redis starts everything recovers on its own (no restart). Approvals used to exit at start
instead (its pub/sub subscription raised). A private ``redis-server`` on a free port plays
the outage; the shared Redis is never touched.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet

from gateway.http.launch import free_port
from tests.harness import gateway_settings, hello_chat, readiness, running_gateway
from tests.waiting import wait_until

ADDR = "127.0.0.1"


class LateRedis:
    """A redis-server on a port chosen now and started later (by this test, by its own pid)."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{ADDR}:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server not found (Debian package redis-server): needed to play an outage")
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", ADDR, "--save", "", "--appendonly", "no"],
            cwd=self.tmp,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


@pytest.fixture
def late_redis(tmp_path: Path) -> Iterator[LateRedis]:
    server = LateRedis(tmp_path)
    try:
        yield server
    finally:
        server.stop()


def _settings(root: Path, upstream: Any, url: str, keys_backend: str) -> Any:
    shared = {"backend": "redis", "redis_url": url, "key_prefix": "wgtest:downstart"}
    keys = {**shared, "redis_timeout_s": 0.5} if keys_backend == "redis" else {"backend": "file"}
    return gateway_settings(
        root,
        upstream.base_url,
        limits={**shared, "redis_timeout_s": 0.5},
        approvals=shared,
        keys=keys,
        redaction={"enabled": False},
        audit={"enabled": False},
    )


@pytest.mark.parametrize("keys_backend", ["redis", "file"])
def test_every_component_starts_not_ready_fails_closed_and_recovers(
    tmp_path: Path, upstream: Any, late_redis: LateRedis, keys_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WARDGATE_APPROVALS_KEY", Fernet.generate_key().decode())
    where = f"{ADDR}:{late_redis.port}"
    with running_gateway(_settings(tmp_path, upstream, late_redis.url, keys_backend)) as gw:
        status, checks = readiness(gw.url)
        assert status == 503, checks
        components = ["limits", "approvals"] + (["keys"] if keys_backend == "redis" else [])
        for name in components:
            assert checks[name].startswith("error:") and str(late_redis.port) in checks[name], (name, checks)
        refused = hello_chat(gw.url)
        if keys_backend == "redis":  # no virtual key is served until the backend answers
            assert refused.status_code == 401, refused.text
        else:  # the key is known: limits cannot be checked, so the call is refused
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "limits_unavailable"

        late_redis.start()
        wait_until(
            lambda: readiness(gw.url)[0] == 200,
            within=20,
            interval=0.1,
            message=f"not ready after Redis at {where} came back: {readiness(gw.url)}",
        )
        assert set(components) <= set(readiness(gw.url)[1])
        ok = hello_chat(gw.url)
        assert ok.status_code == 200, ok.text
