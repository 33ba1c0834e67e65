"""The one gateway launcher (``gateway.http.launch``): tests, orchestrator and benches use it.

A gateway served in a thread or in a child process answers on the URL it reports, serves the
built-in mock through the provider seam, and is gone once stopped; a process that dies at
start-up fails the start with its log, not a timeout.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.http.launch import GatewayProcess, healthy, serve_in_thread
from tests.harness import PASS_THROUGH, REPO, TEST_KEY, gateway_settings

CHAT = {"model": "mock-chat", "messages": [{"role": "user", "content": "hello"}]}
AUTH = {"authorization": f"Bearer {TEST_KEY}"}


def _closed(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return False
    except OSError:
        return True


def test_a_gateway_in_a_thread_answers_on_its_url_and_is_gone_after_the_block(
    tmp_path: Path, fake_upstream: Any
) -> None:
    settings = gateway_settings(tmp_path, fake_upstream.base_url, **PASS_THROUGH)
    with serve_in_thread(settings) as gw:
        assert gw.url.startswith("http://127.0.0.1:") and gw.base_url == gw.url + "/v1"
        assert healthy(gw.url)
        answer = httpx.post(gw.base_url + "/chat/completions", json=CHAT, headers=AUTH, timeout=10)
        assert answer.status_code == 200
        assert answer.json()["choices"][0]["message"]["content"] == "Echo: hello"
        assert gw.ctx is gw.app.state.ctx
    assert _closed(gw.url)
    assert not healthy(gw.url)


def test_a_gateway_process_takes_the_port_it_was_given_and_stops_on_sigterm(
    tmp_path: Path, fake_upstream: Any
) -> None:
    settings = gateway_settings(tmp_path, fake_upstream.base_url, **PASS_THROUGH)
    config = settings.model_dump(mode="json")
    config["server"] = {**config["server"], "host": "0.0.0.0", "port": 1}  # overridden: local, free
    with GatewayProcess(config, tmp_path, cwd=REPO) as gw:
        assert gw.url == f"http://127.0.0.1:{gw.port}"
        answer = httpx.post(gw.base_url + "/chat/completions", json=CHAT, headers=AUTH, timeout=10)
        assert answer.status_code == 200
        pid = gw.pid
    assert gw.proc is not None and gw.proc.poll() is not None and gw.proc.pid == pid
    assert _closed(gw.url)


def test_a_process_that_dies_at_start_up_fails_the_start_with_its_log(tmp_path: Path) -> None:
    config = {"policies_dir": str(tmp_path / "missing"), "server": {"log_level": "warning"}}
    gw = GatewayProcess(
        config, tmp_path, argv=["python3", "-c", "import sys; print('boom at start'); sys.exit(3)"]
    )
    with pytest.raises(RuntimeError, match="boom at start"):
        gw.start(timeout_s=30)
    assert gw.proc is not None and gw.proc.returncode == 3
