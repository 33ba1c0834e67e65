"""Reload says what it applied: limits.yaml is applied, the others are named "restart required".

The real gateway over HTTP: an edit of ``limits.yaml`` followed by a reload is validated and
enforced on the next call, and a broken one is refused with the reason while the running
limits stay. An edit of ``models.yaml`` is not silently "changed": the reload answer,
``GET /admin/policies`` and ``/readyz`` name it as needing a restart, and the running
gateway keeps serving the catalog it started with.
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


def test_a_models_edit_a_restart_would_refuse_is_reported_at_the_reload(
    gateway: tuple[RunningGateway, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    gw, policies, _ = gateway
    path = policies / "models.yaml"
    original = path.read_text()
    doc = yaml.safe_load(original)
    unset = "WARDGATE_TEST_RELOAD_NEVER_SET"
    try:
        doc["models"]["gpt-keyless"] = {"deployments": [{"name": "east", "api_key_env": unset}]}
        path.write_text(yaml.safe_dump(doc))
        with caplog.at_level("WARNING", logger="wardgate.models"):
            body = reload(gw).json()
        assert body["restart_required"] == ["models.yaml"] and body["refused_files"] == []
        warned = [r.getMessage() for r in caplog.records if r.name == "wardgate.models"]
        assert any("'gpt-keyless'" in m and "'east'" in m and unset in m for m in warned), warned
        # A typo a restart would refuse: told now, not at the restart.
        doc["models"]["gpt-keyless"]["deployments"][0]["api_key_evn"] = "X"
        path.write_text(yaml.safe_dump(doc))
        body = reload(gw).json()
        assert body["restart_required"] == ["models.yaml"]
        assert len(body["refused_files"]) == 1 and "api_key_evn" in body["refused_files"][0]
        assert body["refused_files"][0].endswith("(a restart would refuse it)")
        ready = policy_ready(gw)
        assert ready.startswith("degraded: models.yaml: ") and "restart required" in ready, ready
    finally:
        path.write_text(original)
    body = reload(gw).json()
    assert body["restart_required"] == [] and body["refused_files"] == []
    assert policy_ready(gw) == "ok"


def _mock_calls(gw: RunningGateway, n: int) -> list[int]:
    """Statuses of ``n`` calls to mock-chat (200, or 429 once a limit refuses)."""
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    statuses = []
    for _ in range(n):
        try:
            client.chat.completions.create(model="mock-chat", messages=MESSAGES)
            statuses.append(200)
        except openai.APIStatusError as exc:
            statuses.append(exc.status_code)
    return statuses


def test_a_limits_edit_is_applied_and_a_broken_one_refused(
    gateway: tuple[RunningGateway, Path, Path],
) -> None:
    gw, policies, _ = gateway
    path = policies / "limits.yaml"
    original = path.read_text()
    doc = yaml.safe_load(original)
    try:
        assert _mock_calls(gw, 3) == [200, 200, 200]
        doc.setdefault("models", {})["mock-chat"] = {"requests_per_minute": 4}
        path.write_text(yaml.safe_dump(doc))
        resp = reload(gw).json()
        assert resp["applied_files"] == ["limits.yaml"] and resp["restart_required"] == []
        assert resp["refused_files"] == []
        assert policy_ready(gw) == "ok"
        status = get(gw, "/admin/policies", headers=ADMIN).json()
        assert status["reloadable_files"] == ["limits.yaml"]
        # The new limit is enforced from the next call: 4/min on mock-chat (the calls before
        # were not counted against a model scope that had no limit then).
        assert _mock_calls(gw, 5) == [200, 200, 200, 200, 429]
        # A limits.yaml that is YAML but not valid limits: refused, the running limit stays.
        doc["models"]["mock-chat"] = {"requests_per_minute": 4, "requets_per_minute": 100}
        path.write_text(yaml.safe_dump(doc))
        resp = reload(gw).json()
        assert resp["applied_files"] == [] and len(resp["refused_files"]) == 1
        assert resp["refused_files"][0].startswith("limits.yaml: "), resp
        assert "requets_per_minute" in resp["refused_files"][0]
        ready = policy_ready(gw)
        assert ready.startswith("degraded: limits.yaml: ") and ready.endswith("running version kept"), ready
        assert get(gw, "/admin/policies", headers=ADMIN).json()["refused_files"] == resp["refused_files"]
        assert _mock_calls(gw, 1) == [429]
    finally:
        path.write_text(original)
    resp = reload(gw).json()
    assert resp["applied_files"] == ["limits.yaml"] and resp["refused_files"] == []
    assert policy_ready(gw) == "ok"
    assert _mock_calls(gw, 1) == [200]  # the shipped limits again


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


def _denied(gw: RunningGateway, model: str) -> bool:
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    try:
        client.chat.completions.create(model=model, messages=MESSAGES)
    except openai.PermissionDeniedError:
        return True
    return False


def test_a_typo_in_policy_yaml_is_refused_on_reload_and_the_running_allow_list_stays(
    gateway: tuple[RunningGateway, Path, Path],
) -> None:
    """``teams.test.modles`` would be undefined to Rego: the team's model allow-list gone, every
    test passing. The reload names it and keeps the revision that still restricts the team."""
    gw, policies, _ = gateway
    path = policies / "policy.yaml"
    original = path.read_text()
    doc = yaml.safe_load(original)
    try:
        doc["teams"]["test"] = {"models": ["mock-*"], "x_owner": "platform"}  # x_: data of one's own
        path.write_text(yaml.safe_dump(doc))
        resp = reload(gw)
        assert resp.status_code == 200, resp.text
        restricted = resp.json()["revision"]
        assert _denied(gw, "gpt-test") and not _denied(gw, "mock-chat")
        doc["teams"]["test"]["modles"] = doc["teams"]["test"].pop("models")
        path.write_text(yaml.safe_dump(doc))
        resp = reload(gw)
        assert resp.status_code == 422, resp.text
        error = resp.json()["error"]
        assert error["revision"] == restricted
        assert error["errors"] == [
            "policies/policy.yaml: unknown key 'teams.test.modles' (did you mean 'models'?)"
        ], error
        ready = policy_ready(gw)
        assert ready.startswith("degraded: reload refused (") and "teams.test.modles" in ready, ready
        assert _denied(gw, "gpt-test")  # the running revision still restricts the team
    finally:
        path.write_text(original)
    assert reload(gw).status_code == 200
    assert policy_ready(gw) == "ok" and not _denied(gw, "gpt-test")
