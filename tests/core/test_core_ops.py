"""Operator-facing surface: health, readiness, OpenAPI, the keys CLI, serving in a process."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.harness import PASS_THROUGH, REPO, TEST_KEY, GatewayProcess, gateway_settings


def test_healthz_and_readyz_answer(gateway):
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"


def test_openapi_document_describes_the_proxy_endpoints(gateway):
    spec = httpx.get(gateway.url + "/openapi.json").json()
    assert spec["openapi"].startswith("3.")
    chat = spec["paths"]["/v1/chat/completions"]["post"]
    assert chat["requestBody"]["content"]["application/json"]["schema"]["required"] == ["model", "messages"]
    assert "/v1/models" in spec["paths"] and "/healthz" in spec["paths"]


def test_wrong_method_on_a_proxy_path_is_openai_shaped(gateway):
    resp = httpx.get(gateway.base_url + "/chat/completions")
    assert resp.status_code == 405
    assert resp.json()["error"]["code"] == "method_not_allowed"


def test_keys_create_prints_the_key_once_and_stores_only_its_hash(tmp_path):
    keys_file = tmp_path / "keys.yaml"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway",
            "keys",
            "create",
            "--team",
            "t1",
            "--user",
            "u1",
            "--file",
            str(keys_file),
        ],
        capture_output=True,
        text=True,
        check=True,
        cwd=REPO,
    ).stdout
    key = out.strip().splitlines()[-1]
    assert key.startswith("wg-")
    stored = keys_file.read_text()
    assert key not in stored
    entry = yaml.safe_load(stored)["keys"][0]
    assert entry["sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert entry["team"] == "t1" and entry["user"] == "u1"


def test_wardgate_serve_with_two_workers_answers(tmp_path, upstream):
    settings = gateway_settings(tmp_path, upstream.base_url, **PASS_THROUGH)
    config = settings.model_dump(mode="json")
    config["server"]["workers"] = 2
    proc = GatewayProcess(config, tmp_path).start()
    try:
        client = openai.OpenAI(base_url=proc.base_url, api_key=TEST_KEY, max_retries=0)
        for _ in range(4):
            resp = client.chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "w"}]
            )
            assert resp.choices[0].message.content == "Echo: w"
    finally:
        proc.stop()


def test_compose_file_wires_replicas_to_shared_redis_postgres_and_opa():
    compose = yaml.safe_load((REPO / "docker" / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) >= {"gateway", "redis", "postgres", "opa"}
    assert services["gateway"]["deploy"]["replicas"] >= 2
    assert set(services["gateway"]["depends_on"]) == {"redis", "postgres", "opa"}
    config = yaml.safe_load((REPO / "docker" / "wardgate.yaml").read_text())
    from gateway.settings import Settings

    settings = Settings(**config)  # the production config is valid for the settings model
    assert settings.limits.backend == "redis" and settings.policy.engine == "opa"
    assert settings.audit.backend == "postgres"


def test_trailing_slash_is_an_openai_shaped_404_not_a_redirect(gateway):
    resp = httpx.post(gateway.base_url + "/chat/completions/", json={}, follow_redirects=False)
    assert resp.status_code == 404
    assert resp.json()["error"]["code"] == "not_found"


def test_openapi_document_carries_the_detailed_approval_operations(gateway):
    spec = httpx.get(gateway.url + "/openapi.json").json()
    approve = spec["paths"]["/admin/approvals/{approval_id}/approve"]["post"]
    assert "409" in approve["responses"] and "requestBody" in approve


@pytest.mark.parametrize("trusted", [None, "127.0.0.1"], ids=["default", "trusted-proxy"])
def test_forwarded_headers_are_honoured_only_from_configured_proxies(
    tmp_path: Path, upstream: Any, trusted: str | None
) -> None:
    settings = gateway_settings(tmp_path, upstream.base_url, **PASS_THROUGH)
    config = settings.model_dump(mode="json")
    config["server"].update(access_log=True, forwarded_allow_ips=trusted)
    proc = GatewayProcess(config, tmp_path).start()
    try:
        assert httpx.get(proc.url + "/healthz", headers={"x-forwarded-for": "203.0.113.7"}).status_code == 200
        time.sleep(0.2)  # the access log line is written after the response
        logs = proc.logs()
    finally:
        proc.stop()
    line = [ln for ln in logs.splitlines() if "/healthz" in ln and "HTTP/1.1" in ln][
        -1
    ]  # ours: the last probe
    assert ("203.0.113.7" in line) == (trusted is not None)
