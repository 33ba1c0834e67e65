"""Virtual keys shared by replicas (``keys.backend: redis``), against the real Redis.

Two gateways with *separate* ``policies/`` directories (two replicas, two images) share one
Redis prefix: what one creates or revokes, the other applies, revocation within 1 s (measured).
keys.yaml is only the bootstrap (imported once) and the home of the admin keys. The CLI writes
to the backend its configuration names. A backend that cannot be written is a 503, and a Redis
down at start is "not ready" (failing closed) until it returns.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
import yaml

from tests.harness import (
    ADMIN_KEY,
    PASS_THROUGH,
    REPO,
    TEST_KEY,
    RunningGateway,
    free_port,
    gateway_settings,
    running_gateway,
)

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
#: What the issue asks: a revocation is refused on every replica within this (pub/sub path;
#: measured median 60-100 ms, max 180 ms on the loaded 2-core test machine).
REVOCATION_BOUND_S = 1.0
#: The safety net alone (a lost message): version_check_s (0.5) + one reload + the probe's own
#: request; measured median 0.44-0.51 s, max 0.68 s under load, so 1 s plus slack for CI load.
SAFETY_NET_BOUND_S = 1.5
#: Waits that are not the revocation bound (a new key becoming visible, readiness flips).
SETTLE_S = 5.0


@pytest.fixture
def shared_prefix(redis_url: str) -> Iterator[str]:
    prefix = f"wgtest:{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match="{" + prefix + ":keys}:*"):
        client.delete(key)
    client.close()


def _settings(root: Path, upstream: object, prefix: str, url: str = "redis://127.0.0.1:6379/0"):
    keys = {"backend": "redis", "redis_url": url, "key_prefix": prefix, "redis_timeout_s": 0.5}
    return gateway_settings(root, upstream.base_url, **PASS_THROUGH, keys=keys)  # type: ignore[attr-defined]


@pytest.fixture
def replicas(
    tmp_path: Path, upstream: object, shared_prefix: str
) -> Iterator[tuple[RunningGateway, RunningGateway]]:
    with (
        running_gateway(_settings(tmp_path / "a", upstream, shared_prefix)) as a,
        running_gateway(_settings(tmp_path / "b", upstream, shared_prefix)) as b,
    ):
        yield a, b


def _status(gw: RunningGateway, key: str) -> int:
    return httpx.get(
        gw.base_url + "/models", headers={"authorization": f"Bearer {key}"}, timeout=10
    ).status_code


def _until(check: Callable[[], bool], within_s: float, step_s: float = 0.01) -> float:
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < within_s, f"not within {within_s} s"
        time.sleep(step_s)
    return time.monotonic() - t0


def _create(gw: RunningGateway, **body: object) -> httpx.Response:
    return httpx.post(gw.url + "/admin/keys", json=body, headers=ADMIN, timeout=30)


def test_key_created_on_one_replica_works_on_the_other_and_a_revocation_reaches_it_within_1s(
    replicas, redis_url, shared_prefix
):
    a, b = replicas
    assert _status(a, TEST_KEY) == 200 and _status(b, TEST_KEY) == 200  # keys.yaml imported once
    created = _create(a, team="shared", id="shared-1")
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    _until(lambda: _status(b, key) == 200, SETTLE_S)
    assert key not in (b.ctx.settings.policies_dir / "keys.yaml").read_text()  # not in any file
    assert key not in (a.ctx.settings.policies_dir / "keys.yaml").read_text()
    stored = redis.Redis.from_url(redis_url).hgetall("{" + shared_prefix + ":keys}:entries")
    assert key.encode() not in b"".join(stored.values())  # only its hash is stored
    revoked = httpx.delete(a.url + "/admin/keys/shared-1", headers=ADMIN, timeout=30)
    assert revoked.status_code == 200 and revoked.json()["disabled"] is True
    assert _status(a, key) == 401  # the replica that revoked: at once
    took = _until(lambda: _status(b, key) == 401, REVOCATION_BOUND_S)
    assert took <= REVOCATION_BOUND_S
    record = httpx.get(b.url + "/admin/keys/shared-1", headers=ADMIN, timeout=10).json()
    assert record["disabled"] is True and record["revoked_by"] == "root-admin"
    again = _create(b, team="shared", id="shared-1")  # ids are unique across replicas, never reused
    assert again.status_code == 409 and again.json()["error"]["code"] == "key_exists"
    assert _status(b, TEST_KEY) == 200


def test_a_revocation_reaches_the_other_replica_without_pubsub_through_the_version_check(
    replicas, redis_url, shared_prefix
):
    """The safety net: a write whose message is lost (here: bumped without publishing)."""
    a, b = replicas
    key = _create(a, team="net", id="net-1").json()["key"]
    _until(lambda: _status(b, key) == 200, SETTLE_S)
    client = redis.Redis.from_url(redis_url)
    entries = "{" + shared_prefix + ":keys}:entries"
    entry = json.loads(client.hget(entries, "net-1"))
    entry["disabled"] = True
    client.hset(entries, "net-1", json.dumps(entry))
    client.incr("{" + shared_prefix + ":keys}:version")
    took = _until(lambda: _status(b, key) == 401 and _status(a, key) == 401, SAFETY_NET_BOUND_S)
    assert took <= SAFETY_NET_BOUND_S


def _cli(config: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "WARDGATE_CONFIG": str(config), "PYTHONPATH": str(REPO), "COLUMNS": "400"}
    return subprocess.run(
        [sys.executable, "-m", "gateway", "keys", *args], capture_output=True, text=True, cwd=cwd, env=env
    )


def test_cli_writes_to_the_backend_named_in_wardgate_config(replicas, tmp_path, shared_prefix):
    _, b = replicas
    config = tmp_path / "cli.yaml"
    policies = b.ctx.settings.policies_dir
    config.write_text(
        yaml.safe_dump(
            {"policies_dir": str(policies), "keys": {"backend": "redis", "key_prefix": shared_prefix}}
        )
    )
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    before = (policies / "keys.yaml").read_text()
    out = _cli(config, elsewhere, "create", "--team", "cli", "--id", "cli-1")
    assert out.returncode == 0, out.stderr
    assert "redis 127.0.0.1:6379" in out.stdout
    key = out.stdout.strip().splitlines()[-1]
    _until(lambda: _status(b, key) == 200, SETTLE_S)
    assert (policies / "keys.yaml").read_text() == before and not (elsewhere / "policies").exists()
    listed = _cli(config, elsewhere, "list")
    assert "cli-1\tteam=cli" in listed.stdout and key not in listed.stdout
    revoked = _cli(config, elsewhere, "revoke", "cli-1")
    assert revoked.returncode == 0, revoked.stderr
    _until(lambda: _status(b, key) == 401, REVOCATION_BOUND_S)
    assert "cli-1\tteam=cli\tuser=-\trevoked" in _cli(config, elsewhere, "list").stdout
    unknown = _cli(config, elsewhere, "revoke", "nope")
    assert unknown.returncode == 1 and "no virtual key with id 'nope'" in unknown.stderr


def test_cli_file_backend_follows_wardgate_config_and_the_config_option(tmp_path):
    policies = tmp_path / "pol"
    policies.mkdir()
    config = tmp_path / "w.yaml"
    config.write_text(yaml.safe_dump({"policies_dir": str(policies)}))
    out = _cli(config, tmp_path, "create", "--team", "f", "--id", "f-1")
    assert out.returncode == 0, out.stderr
    key = out.stdout.strip().splitlines()[-1]
    text = (policies / "keys.yaml").read_text()
    assert "f-1" in text and key not in text and not (tmp_path / "policies").exists()
    other = tmp_path / "other"
    other.mkdir()
    (tmp_path / "o.yaml").write_text(yaml.safe_dump({"policies_dir": str(other)}))
    env_elsewhere = tmp_path / "missing.yaml"  # --config wins over WARDGATE_CONFIG
    out = _cli(
        env_elsewhere, tmp_path, "create", "--team", "o", "--id", "o-1", "--config", str(tmp_path / "o.yaml")
    )
    assert out.returncode == 0, out.stderr
    assert "o-1" in (other / "keys.yaml").read_text() and "o-1" not in (policies / "keys.yaml").read_text()
    missing = _cli(config, tmp_path, "list", "--config", str(tmp_path / "nope.yaml"))
    assert missing.returncode == 2 and "nope.yaml: config file not found" in missing.stderr


def test_cli_refuses_a_config_it_cannot_trust_before_writing_anything(tmp_path):
    """A typo or a missing WARDGATE_CONFIG used to send the key to ./policies/keys.yaml (or end in
    a pydantic traceback): the operator believed it was in the shared store. Now the command
    exits 2 with the problems, one line each, as ``serve`` does, and writes nothing."""
    (tmp_path / "policies").mkdir()
    typo = tmp_path / "typo.yaml"
    typo.write_text("keys:\n  backnd: redis\n")
    cases = {
        typo: f"{typo}: unknown key 'keys.backnd' (did you mean 'backend'?)",
        tmp_path / "gone.yaml": f"{tmp_path / 'gone.yaml'}: config file not found",
    }
    for config, problem in cases.items():
        done = _cli(config, tmp_path, "create", "--team", "t", "--id", "t-1")
        assert done.returncode == 2, done.stderr
        assert done.stderr.startswith("wardgate: the configuration has errors:\n"), done.stderr
        assert problem in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert "wg-" not in done.stdout and not (tmp_path / "policies" / "keys.yaml").exists()


@contextlib.contextmanager
def _read_only(directory: Path) -> Iterator[None]:
    """A directory the gateway cannot write to, even as root (immutable attribute)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(directory)], check=True)
        try:
            yield
        finally:
            subprocess.run(["chattr", "-i", str(directory)], check=True)
    else:
        mode = directory.stat().st_mode
        directory.chmod(0o555)
        try:
            yield
        finally:
            directory.chmod(mode)


def test_unwritable_keys_file_is_an_openai_shaped_503_not_a_500(tmp_path, upstream):
    settings = gateway_settings(tmp_path, upstream.base_url, **PASS_THROUGH)
    with running_gateway(settings) as gw:
        assert _create(gw, team="w", id="w-1").status_code == 201
        with _read_only(settings.policies_dir):
            for resp in (
                _create(gw, team="w", id="w-2"),
                httpx.delete(gw.url + "/admin/keys/w-1", headers=ADMIN, timeout=30),
            ):
                assert resp.status_code == 503, resp.text
                err = resp.json()["error"]
                assert err["code"] == "keys_store_unavailable" and err["type"] == "service_unavailable"
                assert "keys.yaml is not writable" in err["message"] and set(err) >= {"message", "param"}
        assert httpx.get(gw.url + "/admin/keys/w-1", headers=ADMIN).json()["disabled"] is False
        assert _status(gw, TEST_KEY) == 200


def _readyz(gw: RunningGateway) -> tuple[int, str]:
    resp = httpx.get(gw.url + "/readyz", timeout=10)
    return resp.status_code, resp.json()["checks"].get("keys", "")


def test_redis_down_at_start_is_not_ready_then_recovers_and_later_serves_its_last_keys(
    tmp_path, upstream, shared_prefix
):
    port = free_port()
    settings = _settings(tmp_path, upstream, shared_prefix, url=f"redis://127.0.0.1:{port}/0")
    with running_gateway(settings) as gw:
        status, check = _readyz(gw)
        assert status == 503 and f"127.0.0.1:{port} unreachable" in check and "no virtual keys" in check
        assert _status(gw, TEST_KEY) == 401  # fail closed: the file may list keys revoked since
        down = _create(gw, team="d", id="d-1")
        assert down.status_code == 503 and down.json()["error"]["code"] == "keys_store_unavailable"
        server = subprocess.Popen(
            ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _until(lambda: _readyz(gw)[0] == 200, 10.0, step_s=0.1)
            assert _status(gw, TEST_KEY) == 200  # keys.yaml imported into the empty backend
            assert _create(gw, team="d", id="d-1").status_code == 201
        finally:
            server.terminate()
            server.wait(10)
        _until(lambda: _readyz(gw)[0] == 503, 10.0, step_s=0.1)
        status, check = _readyz(gw)
        assert "serving the last loaded keys" in check and "revocations cannot arrive" in check
        assert _status(gw, TEST_KEY) == 200  # the last loaded keys keep working
