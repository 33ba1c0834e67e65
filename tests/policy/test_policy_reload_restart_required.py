"""Reload says what it applied: files read once at start are named "restart required".

The real gateway over HTTP: an edit of ``models.yaml`` or ``limits.yaml`` followed by a reload
is not silently "changed": the reload answer, ``GET /admin/policies`` and ``/readyz`` name
the file as needing a restart, and the running gateway keeps serving what it started with.
A refused reload leaves the last good revision serving and ``/readyz`` degraded (still 200),
with the reason; fixing the files clears it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from gateway.settings import Settings
from tests.harness import ADMIN_KEY, TEST_KEY, RunningGateway, make_policies_dir, running_gateway

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def gateway(
    fake_upstream: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningGateway, Path, Path]]:
    root = tmp_path_factory.mktemp("reload-restart")
    policies, rego = make_policies_dir(root, fake_upstream.base_url)
    settings = Settings(
        policies_dir=policies,
        rego_dir=rego,
        data_dir=root / "data",
        providers={"max_attempts": 1, "timeout_s": 5.0},
        policy={"watch": False, "test_on_reload": False},
        limits={"enabled": True, "backend": "memory"},
        redaction={"enabled": False},
        approvals={"enabled": False},
        audit={"enabled": False},
    )
    with running_gateway(settings) as gw:
        yield gw, policies, rego


def reload(gw: RunningGateway) -> httpx.Response:
    return httpx.post(gw.base_url.removesuffix("/v1") + "/admin/policies/reload", headers=ADMIN, timeout=30)


def get(gw: RunningGateway, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.get(gw.base_url.removesuffix("/v1") + path, timeout=10, **kwargs)


def policy_ready(gw: RunningGateway) -> str:
    resp = get(gw, "/readyz")
    assert resp.status_code == 200, resp.text  # degraded is still ready: the last good set serves
    return str(resp.json()["checks"]["policy"])


def test_a_models_edit_is_named_restart_required_and_not_pretended_applied(
    gateway: tuple[RunningGateway, Path, Path],
) -> None:
    gw, policies, _ = gateway
    path = policies / "models.yaml"
    original = path.read_text()
    doc = yaml.safe_load(original)
    doc["models"]["mock-new"] = {"deployments": [{"provider": "mock"}]}
    try:
        path.write_text(yaml.safe_dump(doc))
        resp = reload(gw)
        assert resp.status_code == 200, resp.text
        assert resp.json()["restart_required"] == ["models.yaml"]
        status = get(gw, "/admin/policies", headers=ADMIN).json()
        assert status["restart_required"] == ["models.yaml"]
        assert "models.yaml" in status["start_files"] and "limits.yaml" in status["start_files"]
        assert policy_ready(gw) == "degraded: restart required to apply models.yaml"
        # Honest: the running catalog is the one it started with, as /admin/policies says.
        models = get(gw, "/v1/models", headers={"Authorization": f"Bearer {TEST_KEY}"}).json()
        assert "mock-new" not in {m["id"] for m in models["data"]}
    finally:
        path.write_text(original)
    resp = reload(gw)
    assert resp.status_code == 200 and resp.json()["restart_required"] == []
    assert policy_ready(gw) == "ok"


def test_a_limits_edit_is_named_restart_required(gateway: tuple[RunningGateway, Path, Path]) -> None:
    gw, policies, _ = gateway
    path = policies / "limits.yaml"
    original = path.read_text()
    try:
        path.write_text(original + "\n# an operator's edit\n")
        assert reload(gw).json()["restart_required"] == ["limits.yaml"]
        assert "restart required to apply limits.yaml" in policy_ready(gw)
    finally:
        path.write_text(original)
    assert reload(gw).json()["restart_required"] == []


def test_a_refused_reload_keeps_serving_and_readyz_says_degraded_with_the_reason(
    gateway: tuple[RunningGateway, Path, Path],
) -> None:
    gw, _, rego = gateway
    good = get(gw, "/admin/policies", headers=ADMIN).json()["revision"]
    broken = rego / "broken.rego"
    try:
        broken.write_text("package wardgate.broken\n\nx if {\n")
        resp = reload(gw)
        assert resp.status_code == 422 and resp.json()["error"]["revision"] == good
        ready = policy_ready(gw)
        assert ready.startswith("degraded: reload refused (rego/broken.rego:"), ready
        assert ready.endswith(f"revision {good} active"), ready
        client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
        answer = client.chat.completions.create(model="mock-chat", messages=MESSAGES)
        assert answer.choices[0].message.content  # the last good revision still decides
    finally:
        broken.unlink(missing_ok=True)
    resp = reload(gw)
    assert resp.status_code == 200 and resp.json()["revision"] == good
    assert policy_ready(gw) == "ok"
