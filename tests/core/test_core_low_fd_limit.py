"""With a low open-file limit, silent connections no longer starve a legitimate client: the
connection cap is held below the limit, and at the cap a new connection displaces a silent
one (before, accept() failed at the limit and the client waited behind them)."""

from __future__ import annotations

import contextlib
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from gateway.http.intake import connection_cap
from tests.harness import PASS_THROUGH, REPO, TEST_KEY, GatewayProcess, gateway_settings
from tests.raw_http import connect

FD_LIMIT = 256


def _low_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, hard))


class LowFdGatewayProcess(GatewayProcess):
    def start(self, timeout: float = 60.0) -> LowFdGatewayProcess:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            preexec_fn=_low_fd_limit,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway process exited: {self.logs()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise TimeoutError(f"gateway process did not start: {self.logs()[-2000:]}")


def test_the_connection_cap_is_held_below_the_file_limit() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_cap(10) == min(10, soft - max(128, soft // 4))
    assert connection_cap(10**9) < soft


def test_silent_connections_beyond_the_file_limit_do_not_starve_a_client(
    tmp_path: Path, upstream: Any
) -> None:
    settings = gateway_settings(tmp_path, upstream.base_url, **PASS_THROUGH)
    config = settings.model_dump(mode="json")
    config["server"]["header_timeout_s"] = 60  # the silent connections are not timed out here
    proc = LowFdGatewayProcess(config, tmp_path).start()
    silent = []
    try:
        for _ in range(FD_LIMIT + 50):
            silent.append(connect(proc.url))
        time.sleep(0.2)
        start = time.monotonic()
        resp = httpx.post(
            proc.base_url + "/chat/completions",
            timeout=10,
            headers={"Authorization": f"Bearer {TEST_KEY}"},
            json={"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]},
        )
        assert resp.status_code == 200, resp.text
        assert time.monotonic() - start < 5
    finally:
        for sock in silent:
            sock.close()
        proc.stop()
