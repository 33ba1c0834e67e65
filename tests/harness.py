"""Run the real gateway for tests: keys, models and settings, then the shared launcher.

The launching itself is ``gateway.http.launch`` (shared with the orchestrator and the
benches): ``running_gateway(settings)`` serves ``create_app(settings)`` from a background
thread with its own event loop, so tests can drive it with the sync or the async ``openai``
client; ``GatewayProcess`` runs ``wardgate serve`` in a child process, for tests that need
two gateways sharing Redis, a crash or a signal.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterable
from contextlib import AbstractContextManager as ContextManager
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway.http import launch
from gateway.http.launch import ServedApp as RunningGateway
from gateway.http.launch import free_port as free_port
from gateway.http.launch import free_socket as free_socket
from gateway.http.launch import serve_in_thread
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
    "console": {"enabled": False},
}


def running_gateway(settings: Settings, startup_timeout: float = 30.0) -> ContextManager[RunningGateway]:
    """``create_app(settings)`` served from a background thread (``gateway.http.launch``)."""
    return serve_in_thread(settings, startup_timeout_s=startup_timeout)


class GatewayProcess(launch.GatewayProcess):
    """``wardgate serve`` in a child process run from the repository (``gateway.http.launch``)."""

    def __init__(
        self, config: dict[str, Any], root: Path, env: dict[str, str] | None = None, **options: Any
    ) -> None:
        super().__init__(config, root, env=env, cwd=REPO, **options)


def start_all(procs: Iterable[launch.GatewayProcess], timeout_s: float = 60.0) -> None:
    """Spawn every process, then wait for each: they boot side by side (a boot is seconds of
    imports and warm-ups, mostly on one core), not one after the other. On a failure every
    process is stopped before the error propagates."""
    procs = list(procs)
    try:
        for proc in procs:
            proc.spawn()
        for proc in procs:
            proc.wait_ready(timeout_s)
    except BaseException:
        stop_all(procs)
        raise


def stop_all(procs: Iterable[launch.GatewayProcess]) -> None:
    """SIGTERM every process first, then wait for each (``stop``: SIGKILL after its timeout).

    A fixture's ``finally`` that stopped them one by one could be cut by pytest-timeout in the
    middle (a start-up that ran out its time on a busy machine): the processes not reached yet
    stayed up for the rest of the run, orphaned (seen: six drain-test gateways)."""
    procs = list(procs)
    for proc in procs:
        if proc.proc is not None and proc.proc.poll() is None:
            proc.proc.terminate()
    for proc in procs:
        proc.stop()


def readiness(url: str) -> tuple[int, dict[str, str]]:
    """``/readyz``'s status and its checks per component (what an orchestrator's probe sees)."""
    resp = httpx.get(url + "/readyz", timeout=10)
    return resp.status_code, resp.json()["checks"]


def hello_chat(url: str) -> httpx.Response:
    """One small chat call with the test key (``mock-chat``), answered or refused as it is."""
    return httpx.post(
        url + "/v1/chat/completions",
        json={"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]},
        headers={"authorization": f"Bearer {TEST_KEY}"},
        timeout=30,
    )
