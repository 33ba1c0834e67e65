"""Run the real gateway for tests: uvicorn on a free port, in a thread or in a subprocess.

``running_gateway(settings)`` serves ``create_app(settings)`` from a background thread with
its own event loop, so tests can drive it with the sync or the async ``openai`` client.
``GatewayProcess`` runs ``wardgate serve`` in a child process, for tests that need two
gateways sharing Redis, or a crash.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
import yaml

from gateway.app import create_app
from gateway.http.protocol import HTTP_PROTOCOL
from gateway.settings import Settings

REPO = Path(__file__).resolve().parent.parent

#: Keys used by tests (plaintext here, hashed in the generated keys.yaml).
TEST_KEY = "wg-test-0123456789abcdef0123456789abcdef"
LIMITED_KEY = "wg-test-limited-00000000000000000000000"
OTHER_TEAM_KEY = "wg-test-other-team-0000000000000000000"
ADMIN_KEY = "wg-admin-test-000000000000000000000000"
APPROVER_KEY = "wg-approver-test-000000000000000000000"
AUDITOR_KEY = "wg-auditor-test-0000000000000000000000"
PROVIDER_KEY = "sk-provider-test-key-never-to-leak-000000"


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def default_keys() -> dict[str, Any]:
    return {
        "keys": [
            {
                "id": "test",
                "sha256": _sha(TEST_KEY),
                "team": "test",
                "user": "tester",
                "roles": ["developer"],
                "models": ["*"],
            },
            {
                "id": "limited",
                "sha256": _sha(LIMITED_KEY),
                "team": "test",
                "user": "limited",
                "models": ["mock-chat"],
            },
            {
                "id": "other",
                "sha256": _sha(OTHER_TEAM_KEY),
                "team": "other",
                "user": "other",
                "models": ["*"],
            },
        ],
        "admin_keys": [
            {
                "id": "admin",
                "sha256": _sha(ADMIN_KEY),
                "user": "root-admin",
                "roles": ["admin"],
                "groups": ["finance", "support"],
            },
            {
                "id": "approver",
                "sha256": _sha(APPROVER_KEY),
                "user": "reviewer",
                "roles": ["approver"],
                "groups": ["finance"],
            },
            {"id": "auditor", "sha256": _sha(AUDITOR_KEY), "user": "auditor", "roles": ["auditor"]},
        ],
    }


def upstream_models(base_url: str) -> dict[str, Any]:
    """models.yaml pointing the test models at a fake upstream, plus the built-in mock."""
    dep = {"provider": "openai", "base_url": base_url, "api_key_env": "WARDGATE_TEST_PROVIDER_KEY"}
    return {
        "models": {
            "gpt-test": {"endpoints": ["chat.completions", "responses"], "deployments": [dep]},
            "gpt-test-cheap": {"endpoints": ["chat.completions", "responses"], "deployments": [dep]},
            "embed-test": {"endpoints": ["embeddings"], "deployments": [dep]},
            "mock-chat": {
                "endpoints": ["chat.completions", "responses"],
                "deployments": [{"provider": "mock"}],
            },
            "mock-embedding": {"endpoints": ["embeddings"], "deployments": [{"provider": "mock"}]},
        }
    }


def make_policies_dir(
    root: Path,
    upstream_url: str,
    keys: dict[str, Any] | None = None,
    models: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
) -> tuple[Path, Path]:
    """A private copy of policies/ and rego/ with test keys and models; returns (policies, rego)."""
    os.environ["WARDGATE_TEST_PROVIDER_KEY"] = PROVIDER_KEY
    policies = root / "policies"
    rego = root / "rego"
    shutil.copytree(REPO / "policies", policies, dirs_exist_ok=True)
    if (REPO / "rego").exists():
        shutil.copytree(REPO / "rego", rego, dirs_exist_ok=True)
    else:
        rego.mkdir(parents=True, exist_ok=True)
    (policies / "keys.yaml").write_text(yaml.safe_dump(keys or default_keys()))
    (policies / "models.yaml").write_text(yaml.safe_dump(models or upstream_models(upstream_url)))
    for name, doc in (extra or {}).items():
        (policies / name).write_text(yaml.safe_dump(doc))
    return policies, rego


def gateway_settings(root: Path, upstream_url: str, **overrides: Any) -> Settings:
    """Settings for a test gateway: embedded defaults, private dirs, fast provider retries."""
    policies, rego = make_policies_dir(root, upstream_url)
    base: dict[str, Any] = {
        "policies_dir": policies,
        "rego_dir": rego,
        "data_dir": root / "data",
        "providers": {"max_attempts": 2, "backoff_base_s": 0.01, "timeout_s": 5.0},
    }
    for section, value in overrides.items():
        if isinstance(value, dict) and isinstance(base.get(section), dict):
            base[section] = {**base[section], **value}
        else:
            base[section] = value
    return Settings(**base)


#: Every guard off: what the core tests and the overhead benchmark measure.
PASS_THROUGH: dict[str, Any] = {
    "limits": {"enabled": False},
    "policy": {"enabled": False},
    "redaction": {"enabled": False},
    "approvals": {"enabled": False},
    "audit": {"enabled": False},
}


def free_socket() -> socket.socket:
    # IPPROTO_TCP explicitly: asyncio disables Nagle's algorithm only on sockets that say so,
    # and without it every keep-alive request to a test gateway waited ~45 ms.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


def free_port() -> int:
    with contextlib.closing(free_socket()) as sock:
        return sock.getsockname()[1]


@dataclass
class RunningGateway:
    url: str
    server: uvicorn.Server
    app: Any

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def ctx(self) -> Any:
        """The live AppContext (for assertions on stores; tests still drive it over HTTP)."""
        return self.app.state.ctx


@contextlib.contextmanager
def running_gateway(settings: Settings, startup_timeout: float = 30.0) -> Iterator[RunningGateway]:
    app = create_app(settings)
    sock = free_socket()
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan="on",
        loop="asyncio",
        http=HTTP_PROTOCOL,
        ws="none",
        access_log=False,
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError("gateway failed to start (see log above)")
        if time.monotonic() > deadline:
            raise TimeoutError("gateway did not start in time")
        time.sleep(0.02)
    port = sock.getsockname()[1]
    running = RunningGateway(f"http://127.0.0.1:{port}", server, app)
    try:
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()


class GatewayProcess:
    """``wardgate serve`` in a child process with a config file; stop() or kill() it."""

    def __init__(self, config: dict[str, Any], root: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        config = {**config, "server": {**config.get("server", {}), "port": self.port, "host": "127.0.0.1"}}
        self.config_path = root / f"wardgate-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(_plain(config)))
        self.env = {**os.environ, **(env or {}), "WARDGATE_CONFIG": str(self.config_path)}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / f"gateway-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def start(self, timeout: float = 60.0) -> GatewayProcess:
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve"],
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway process exited: {self.log_path.read_text()[-2000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            time.sleep(0.1)
        raise TimeoutError(f"gateway process did not start: {self.log_path.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


def _plain(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj
