"""docker/: the compose file, the Dockerfile and the config they ship, checked without Docker.

No image can be pulled or built here, so the deployment is checked statically: compose.yaml
against the Compose Specification's JSON schema (vendored in ``compose-spec.json``, from the
compose-spec project's ``schema/compose-spec.json`` at commit 170098ba, Apache-2.0), by
``docker compose config`` when the compose plugin is installed, and for the properties that
make it safe to run as written: one policy source for OPA, pinned images, a healthcheck on
every service, loopback-only ports, secrets from files, no demo key anywhere, a non-root
user with a writable state path and a private metrics directory for the workers.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
SCHEMA = Path(__file__).with_name("compose-spec.json")
#: An exact release tag (an optional variant suffix): major.minor.patch; PostgreSQL numbers its
#: releases major.minor (16.6), so there two parts are exact and "16" alone floats.
PINNED_TAG = re.compile(r"^\d+\.\d+\.\d+(-[a-z0-9.-]+)?$")
PINNED_POSTGRES_TAG = re.compile(r"^\d+\.\d+(-[a-z0-9.-]+)?$")


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _config() -> dict[str, Any]:
    return yaml.safe_load((DOCKER / "wardgate.yaml").read_text())


def _interpolate(value: str, env: dict[str, str] | None = None) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR}`` with ``env`` (default: nothing set)."""
    env = env or {}

    def sub(m: re.Match[str]) -> str:
        name, _, default = m.group(1).partition(":-")
        return env.get(name) or default

    return re.sub(r"\$\{([^}?]+)\}", sub, value)


def _demo_secrets() -> set[str]:
    """Every demo key the repo publishes: plaintext in README.md, hashes in policies/keys.yaml."""
    found = set(re.findall(r"wg-[a-z]+-[0-9a-f]{32}", (REPO / "README.md").read_text()))
    found |= set(re.findall(r"wg-[a-z]+-[0-9a-f]{32}", (REPO / "Makefile").read_text()))
    keys = yaml.safe_load((REPO / "policies" / "keys.yaml").read_text())
    hashes = {e["sha256"] for e in keys.get("keys", []) + keys.get("admin_keys", [])}
    assert found and hashes, "the demo keys moved: update this test"
    return found | hashes | {hashlib.sha256(k.encode()).hexdigest() for k in found}


def test_compose_file_is_valid_against_the_compose_spec_schema() -> None:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(_compose())


def test_a_broken_compose_file_is_refused_by_the_same_schema_check() -> None:
    """The schema check is not vacuous: a misspelled service field fails it."""
    doc = _compose()
    doc["services"]["gateway"]["healtcheck"] = doc["services"]["gateway"].pop("healthcheck")
    with pytest.raises(jsonschema.ValidationError, match="healtcheck"):
        jsonschema.Draft7Validator(json.loads(SCHEMA.read_text())).validate(doc)


@pytest.mark.skipif(
    shutil.which("docker") is None
    or subprocess.run(["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="the docker compose plugin is not installed (the schema test above still runs)",
)
def test_docker_compose_config_accepts_the_file(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    copy = tmp_path / "docker"
    shutil.copytree(DOCKER, copy)
    for name in ("keys.yaml", "approvals_key", "postgres_password", "openai_api_key"):
        (copy / "secrets" / name).write_text("x")
    done = subprocess.run(
        ["docker", "compose", "-f", str(copy / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr


def test_every_image_is_pinned_to_an_exact_version() -> None:
    images = {name: svc["image"] for name, svc in _compose()["services"].items() if "build" not in svc}
    assert set(images) == {"redis", "postgres", "opa"}
    for name, image in images.items():
        repo, _, tag = image.partition(":")
        pattern = PINNED_POSTGRES_TAG if repo == "postgres" else PINNED_TAG
        assert pattern.match(tag), f"{name}: {image} is not pinned to an exact version"
    froms = re.findall(r"^FROM\s+(\S+)", DOCKERFILE.read_text(), flags=re.M)
    assert len(froms) == 2
    for image in froms:
        tag = image.partition(":")[2]
        assert re.match(r"^\d+\.\d+\.\d+-", tag), f"Dockerfile FROM {image} is not pinned"
    assert "latest" not in COMPOSE.read_text() + DOCKERFILE.read_text()


def test_every_service_has_a_healthcheck_and_the_gateway_waits_for_them() -> None:
    services = _compose()["services"]
    for name, svc in services.items():
        check = svc.get("healthcheck")
        assert check and check.get("test") and not check.get("disable"), f"{name} has no healthcheck"
        assert check["test"][0] in ("CMD", "CMD-SHELL")
    gateway = services["gateway"]
    assert any("/readyz" in part for part in gateway["healthcheck"]["test"])
    assert "/readyz" in DOCKERFILE.read_text().split("HEALTHCHECK", 1)[1]
    assert services["opa"]["healthcheck"]["test"][-1].endswith(":8181/health")
    assert {dep: c["condition"] for dep, c in gateway["depends_on"].items()} == {
        "redis": "service_healthy",
        "postgres": "service_healthy",
        "opa": "service_healthy",
    }


def test_opa_has_exactly_one_policy_source_the_gateway_push() -> None:
    """OPA loading files (--watch, paths, bundles) while the gateway pushes the same modules ends in
    'multiple default rules' and a gateway that exits on the refused push, restarting in a loop."""
    opa = _compose()["services"]["opa"]
    command = opa["command"] if isinstance(opa["command"], list) else shlex.split(opa["command"])
    assert command[:2] == ["run", "--server"]
    for arg in command[2:]:
        assert arg.startswith("--"), f"OPA loads a path: {arg}"
        flag = arg.split("=", 1)[0]
        assert flag not in ("--watch", "-w", "--bundle", "-b", "--config-file", "-c", "--set")
    assert "volumes" not in opa and "configs" not in opa
    assert not (DOCKER / "opa-data").exists()
    policy = _config()["policy"]
    assert policy["engine"] == "opa" and policy["opa_push"] is True
    assert policy["opa_url"] == "http://opa:8181"
    assert command[2] == "--addr=0.0.0.0:8181"


def test_ports_are_published_on_loopback_unless_the_operator_says_otherwise() -> None:
    services = _compose()["services"]
    for name, svc in services.items():
        for port in svc.get("ports", []):
            assert isinstance(port, str), "long port syntax: check host_ip here"
            assert _interpolate(port).startswith("127.0.0.1:"), f"{name}: {port}"
        assert "network_mode" not in svc
    published = [p for svc in services.values() for p in svc.get("ports", [])]
    assert published == ["${GATEWAY_BIND_HOST:-127.0.0.1}:8080-8081:8080"]
    assert services["gateway"]["deploy"]["replicas"] == 2  # one host port per replica


def test_the_gateway_runs_as_non_root_on_a_read_only_root_with_one_writable_state_path() -> None:
    gateway = _compose()["services"]["gateway"]
    uid = gateway["user"].split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000
    assert re.search(rf"^USER {uid}:", DOCKERFILE.read_text(), flags=re.M)
    assert gateway["read_only"] is True
    config = _config()
    state = "/var/lib/wardgate"
    assert gateway["volumes"] == [f"wardgate-state:{state}"]
    assert config["policies_dir"].startswith(state + "/") and config["data_dir"].startswith(state + "/")
    assert f"chown -R {uid}:{uid} {state}" in DOCKERFILE.read_text()  # a new volume copies this owner
    tmpfs = {entry.split(":")[0]: entry for entry in gateway["tmpfs"]}
    assert set(tmpfs) == {"/tmp", "/run/wardgate"}
    assert all(f"uid={uid}" in entry for entry in tmpfs.values())
    for name, svc in _compose()["services"].items():
        assert svc.get("privileged") is not True, name


def test_workers_share_metrics_through_a_private_tmpfs() -> None:
    gateway = _compose()["services"]["gateway"]
    assert _config()["server"]["workers"] > 1
    multiproc = gateway["environment"]["PROMETHEUS_MULTIPROC_DIR"]
    tmpfs = [entry.split(":")[0] for entry in gateway["tmpfs"]]
    assert any(multiproc.startswith(path + "/") for path in tmpfs), "not on a per-container tmpfs"


def test_the_grace_period_covers_the_drain() -> None:
    gateway = _compose()["services"]["gateway"]
    grace = int(gateway["stop_grace_period"].removesuffix("s"))
    server = _config()["server"]
    assert grace >= server["shutdown_grace_s"] + server.get("shutdown_delay_s", 0) + 5


def test_secrets_come_from_files_and_the_approvals_key_is_shared() -> None:
    doc = _compose()
    gateway = doc["services"]["gateway"]
    targets = {s["source"]: s["target"] for s in gateway["secrets"]}
    assert targets["wardgate_approvals_key"] == "wardgate_approvals_key"
    assert targets["wardgate_keys"] == "wardgate_keys.yaml"
    entrypoint = (DOCKER / "entrypoint.sh").read_text()
    assert 'from_file WARDGATE_APPROVALS_KEY "$SECRETS_DIR/wardgate_approvals_key"' in entrypoint
    assert "KEYS_SEED_FILE:-/run/secrets/wardgate_keys.yaml" in entrypoint
    assert 'from_file PGPASSWORD "$SECRETS_DIR/postgres_password"' in entrypoint
    for name, spec in doc["secrets"].items():
        assert spec["file"].startswith("./secrets/"), name
    # No secret value in the environment of any service (docker inspect would show it).
    for name, svc in doc["services"].items():
        for key in svc.get("environment") or {}:
            assert not re.search(r"PASSWORD$|_KEY$|TOKEN", key), f"{name}: {key} set in the environment"
    assert (
        doc["services"]["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"]
        == "/run/secrets/postgres_password"
    )
    assert ":" not in _config()["audit"]["postgres_dsn"].split("@")[0].removeprefix("postgresql://")
    ignored = (DOCKER / "secrets" / ".gitignore").read_text().splitlines()
    assert "*" in ignored  # the secret files next to compose.yaml are never committed


def test_no_demo_key_anywhere_under_docker_and_keys_yaml_never_enters_the_image() -> None:
    demo = _demo_secrets()
    for path in DOCKER.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            leaked = [secret for secret in demo if secret in text]
            assert not leaked, f"{path.relative_to(REPO)} carries a demo key"
    dockerfile = DOCKERFILE.read_text()
    copies = re.findall(r"^COPY\s+(?!--from)(.+?)\s+\S+$", dockerfile.replace("\\\n", " "), flags=re.M)
    sources = [src for line in copies for src in line.split()]
    assert "policies" not in sources and "policies/" not in sources, "copies policies/ whole (keys.yaml)"
    assert not any(src.endswith("keys.yaml") or src.startswith("README") for src in sources)
    wanted = {f"policies/{p.name}" for p in (REPO / "policies").glob("*.yaml") if p.name != "keys.yaml"}
    assert wanted <= set(sources), f"policy files missing from the image: {wanted - set(sources)}"


def test_the_shipped_config_is_valid_settings() -> None:
    settings = Settings.model_validate(_config())
    assert settings.limits.backend == "redis" and settings.approvals.backend == "redis"
    assert settings.audit.backend == "postgres" and settings.audit.fail_closed is True
    assert settings.policy.fail_open is False and settings.limits.on_store_error == "deny"
    assert settings.approvals.answer_key_env == "WARDGATE_APPROVALS_KEY"
    hosts = {
        urlsplit_host(settings.limits.redis_url),
        urlsplit_host(settings.approvals.redis_url),
        urlsplit_host(settings.audit.postgres_dsn),
        urlsplit_host(settings.policy.opa_url),
    }
    assert hosts <= set(_compose()["services"]), f"config names a host compose lacks: {hosts}"
    assert os.path.isabs(settings.rego_dir) and str(settings.rego_dir) == "/app/rego"
    assert "COPY rego ./rego" in DOCKERFILE.read_text() and "WORKDIR /app" in DOCKERFILE.read_text()


def urlsplit_host(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or ""
