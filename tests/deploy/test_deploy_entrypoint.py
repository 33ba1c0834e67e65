"""docker/entrypoint.sh run for real: secrets from files, keys seeded once into a writable
policies_dir, demo keys never used, stale metrics files removed, then the real gateway.

The image and Kubernetes both start the gateway through this script, so its behaviour is
tested here with the real ``wardgate serve`` (embedded backends, one worker) and real HTTP;
only the paths differ from a container (STATE_DIR, POLICIES_SRC, KEYS_SEED_FILE, SECRETS_DIR).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from gateway.http.launch import free_port
from tests.waiting import wait_until

REPO = Path(__file__).resolve().parents[2]
ENTRYPOINT = REPO / "docker" / "entrypoint.sh"
ADMIN = "wg-admin-" + "5" * 32
DEMO_ADMIN = "wg-admin-610b16c1e53e120636d9738679f735fa"  # README's, hashed in policies/keys.yaml
ENV_APPROVALS_KEY = "YW5vdGhlci1rZXktb2YtZXhhY3RseS0zMi1ieXRlcyE="
APPROVALS_KEY = "bm90LWEtcmVhbC1rZXktYnV0LTMyLWJ5dGVzLWxvbmc="


class Entrypoint:
    """``entrypoint.sh`` with container paths moved under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state = root / "state"
        self.secrets = root / "secrets"
        self.metrics = root / "metrics"
        self.secrets.mkdir(exist_ok=True)
        self.policies_src = _configmap_volume(root / "configmap", REPO / "policies")
        self.port = free_port()
        self.config = root / "wardgate.yaml"
        self.config.write_text(
            yaml.safe_dump(
                {
                    "server": {"host": "127.0.0.1", "port": self.port, "workers": 1},
                    "policies_dir": str(self.state / "policies"),
                    "rego_dir": str(REPO / "rego"),
                    "data_dir": str(self.state / "data"),
                }
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self.extra_env: dict[str, str] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("WARDGATE_", "PROMETHEUS_"))}
        env.pop("PGPASSWORD", None)
        env.pop("OPENAI_API_KEY", None)
        env.update(
            PATH=f"{Path(sys.executable).parent}:{env.get('PATH', '/usr/bin:/bin')}",
            WARDGATE_CONFIG=str(self.config),
            PROMETHEUS_MULTIPROC_DIR=str(self.metrics),
            STATE_DIR=str(self.state),
            POLICIES_SRC=str(self.policies_src),  # holds the demo keys.yaml: must be skipped
            KEYS_SEED_FILE=str(self.secrets / "wardgate_keys.yaml"),
            SECRETS_DIR=str(self.secrets),
        )
        env.update(self.extra_env)
        return env

    def run(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["sh", str(ENTRYPOINT)], env=self.env(), capture_output=True, text=True, timeout=60
        )

    def start(self) -> Entrypoint:
        log = (self.root / "gateway.log").open("wb")
        self.proc = subprocess.Popen(
            ["sh", str(ENTRYPOINT), "--port", str(self.port)],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )

        def ready() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError((self.root / "gateway.log").read_text()[-3000:])
            try:
                return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, within=60, interval=0.1, message="the gateway behind entrypoint.sh is not ready")
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def environ(self) -> dict[str, str]:
        assert self.proc is not None
        raw = Path(f"/proc/{self.proc.pid}/environ").read_bytes()
        return dict(item.split("=", 1) for item in raw.decode().split("\0") if "=" in item)


def _configmap_volume(root: Path, source: Path) -> Path:
    """``source``'s files laid out as Kubernetes mounts a ConfigMap: each name a symlink into a
    hidden ``..data`` directory (which the entrypoint must neither copy nor trip over)."""
    data = root / "..2026_01_01_00_00_00.000000001"
    data.mkdir(parents=True)
    for path in source.glob("*.yaml"):
        (data / path.name).write_text(path.read_text())
    (root / "..data").symlink_to(data.name)
    for path in source.glob("*.yaml"):
        (root / path.name).symlink_to(f"..data/{path.name}")
    return root


def _seed_keys(path: Path) -> None:
    """The keys.yaml docker/secrets/README.md tells operators to write: no keys, one admin key."""
    path.write_text(
        "keys: []\nadmin_keys:\n  - id: admin-1\n"
        f"    sha256: {hashlib.sha256(ADMIN.encode()).hexdigest()}\n    user: ops\n    roles: [admin]\n"
    )


@pytest.fixture
def entry(tmp_path: Path) -> Iterator[Entrypoint]:
    e = Entrypoint(tmp_path)
    _seed_keys(e.secrets / "wardgate_keys.yaml")
    (e.secrets / "wardgate_approvals_key").write_text(APPROVALS_KEY + "\n")
    (e.secrets / "postgres_password").write_text("pg-secret-from-file\n")
    (e.secrets / "openai_api_key").write_text("sk-from-file\n")
    try:
        yield e
    finally:
        e.stop()


def _admin(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_secrets_become_env_keys_are_seeded_and_the_state_path_is_writable(entry: Entrypoint) -> None:
    entry.metrics.mkdir()
    (entry.metrics / "counter_4242.db").write_bytes(b"stale")  # a previous run's dead worker
    entry.start()

    env = entry.environ()
    assert env["WARDGATE_APPROVALS_KEY"] == APPROVALS_KEY  # trailing newline dropped
    assert env["PGPASSWORD"] == "pg-secret-from-file"
    assert env["OPENAI_API_KEY"] == "sk-from-file"
    assert not (entry.metrics / "counter_4242.db").exists()

    policies = entry.state / "policies"
    shipped = {p.name for p in (REPO / "policies").glob("*.yaml")}
    assert {p.name for p in policies.glob("*.yaml")} == shipped
    assert not any(p.is_symlink() for p in policies.iterdir())  # copies, not links into the volume
    assert sorted(p.name for p in policies.iterdir() if p.name.startswith(".")) in ([], [".keys.yaml.lock"])
    assert not list(policies.glob(".*.new")) and not (policies / ".keys.yaml.seed").exists()

    # The demo admin key of the policies it was given is not active; the seeded one is.
    assert httpx.get(entry.url + "/admin/keys", headers=_admin(DEMO_ADMIN)).status_code == 401
    created = httpx.post(
        entry.url + "/admin/keys",
        headers=_admin(ADMIN),
        json={"team": "support", "user": "bot-1", "models": ["mock-*"]},
    )
    assert created.status_code == 201, created.text  # keys.yaml rewritten in the writable state path
    new_key = created.json()["key"]
    assert (
        "bot-1" in (policies / "keys.yaml").read_text()
        and new_key not in (policies / "keys.yaml").read_text()
    )

    def models() -> set[str]:
        answer = httpx.get(entry.url + "/v1/models", headers=_admin(new_key))
        return {m["id"] for m in answer.json()["data"]} if answer.status_code == 200 else set()

    assert wait_until(models, within=10) >= {"mock-chat"}


def test_a_restart_keeps_the_keys_created_since_the_seed_and_env_wins_over_files(entry: Entrypoint) -> None:
    entry.start()
    created = httpx.post(entry.url + "/admin/keys", headers=_admin(ADMIN), json={"team": "t", "user": "u"})
    assert created.status_code == 201
    entry.stop()
    _seed_keys(entry.secrets / "wardgate_keys.yaml")  # the seed is only read when no keys exist yet
    # Kubernetes sets WARDGATE_APPROVALS_KEY from a secretKeyRef: a file must not override it.
    entry.extra_env["WARDGATE_APPROVALS_KEY"] = ENV_APPROVALS_KEY
    entry.start()
    key = created.json()["key"]
    assert httpx.get(entry.url + "/v1/models", headers=_admin(key)).status_code == 200
    assert entry.environ()["WARDGATE_APPROVALS_KEY"] == ENV_APPROVALS_KEY


def test_without_a_keys_secret_the_container_refuses_to_start(entry: Entrypoint) -> None:
    (entry.secrets / "wardgate_keys.yaml").unlink()
    done = entry.run()
    assert done.returncode == 64
    assert "no keys: mount a keys.yaml" in done.stderr and str(entry.secrets) in done.stderr
    assert not (entry.state / "policies" / "keys.yaml").exists()
