"""The policy end to end: the real gateway over HTTP, driven with the real ``openai`` SDK."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import yaml

from gateway.policy.component import Policy
from gateway.settings import Settings
from tests.harness import (
    ADMIN_KEY,
    OTHER_TEAM_KEY,
    TEST_KEY,
    RunningGateway,
    make_policies_dir,
    running_gateway,
)
from tests.opa_server import OpaServer

POLICY = {
    "defaults": {"models": ["*"]},
    "teams": {
        "other": {"models": ["mock-chat"]},
        "test": {"models": ["gpt-test", "gpt-test-cheap", "embed-test", "mock-*"], "max_tokens": 256},
    },
    "tool_rules": [{"tools": ["shell*"], "unless_roles": ["ops"], "reason": "shell access is for ops"}],
    "high_stakes": {
        "delete_customer": {"deny": True, "reason": "never done by an agent"},
        "transfer_funds": {"argument": "amount", "above": 1000, "approvers": ["finance"]},
    },
    "routing": {"low_budget_usd": 1.0, "cheaper": {"gpt-test": "gpt-test-cheap"}},
}
GUARDS_OFF = {
    "limits": {"enabled": False},
    "redaction": {"enabled": False},
    "approvals": {"enabled": False},
    "audit": {"enabled": False},
}
MESSAGES = [{"role": "user", "content": "hello"}]


def settings_for(
    root: Path, upstream_url: str, *, extra: dict[str, Any] | None = None, **overrides: Any
) -> Settings:
    """Settings for a gateway with POLICY as policies/policy.yaml and ``overrides`` per section."""
    policies, rego = make_policies_dir(root, upstream_url, extra={"policy.yaml": POLICY, **(extra or {})})
    base: dict[str, Any] = {
        "policies_dir": policies,
        "rego_dir": rego,
        "data_dir": root / "data",
        "providers": {"max_attempts": 1, "timeout_s": 5.0},
        **GUARDS_OFF,
    }
    for key, value in overrides.items():
        base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
    return Settings(**base)


@pytest.fixture(scope="module")
def gateway(fake_upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("policy-e2e")
    with running_gateway(settings_for(root, fake_upstream.base_url, policy={"watch": False})) as gw:
        yield gw


def sdk(gw: RunningGateway, key: str = TEST_KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0)


def test_denied_model_is_a_403_whose_reasons_the_sdk_shows(gateway: RunningGateway, upstream: Any) -> None:
    with pytest.raises(openai.PermissionDeniedError) as raised:
        sdk(gateway, OTHER_TEAM_KEY).chat.completions.create(model="gpt-test", messages=MESSAGES)
    error = raised.value
    assert error.status_code == 403 and error.code == "policy_denied"
    assert "model 'gpt-test' is not allowed for team 'other'" in str(error)
    assert error.body["reasons"] == ["model 'gpt-test' is not allowed for team 'other'"]  # type: ignore[index]
    assert error.response.headers["x-wardgate-decision"] == "deny"
    assert error.response.headers["x-wardgate-policy-revision"]
    assert upstream.requests == []  # nothing was forwarded


def test_allowed_call_carries_the_decision_and_is_capped(gateway: RunningGateway, upstream: Any) -> None:
    raw = sdk(gateway).chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES, max_tokens=9999
    )
    assert raw.headers["x-wardgate-decision"] == "allow"
    assert (
        raw.headers["x-wardgate-policy-revision"] == gateway.component(Policy).service.manager.engine.revision
    )
    assert raw.parse().choices[0].message.content
    assert upstream.last_request.json["max_tokens"] == 256


def test_denied_tool_call_in_an_answer_is_a_403(gateway: RunningGateway, upstream: Any) -> None:
    upstream.script_tool_call("delete_customer", {"customer_id": 42})
    with pytest.raises(openai.PermissionDeniedError) as raised:
        sdk(gateway).chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert raised.value.body["reasons"] == ["tool 'delete_customer' is never allowed: never done by an agent"]  # type: ignore[index]


def test_denied_tool_call_in_a_stream_becomes_an_error_the_sdk_raises(
    gateway: RunningGateway, upstream: Any
) -> None:
    upstream.script_tool_call("shell_exec", {"cmd": "rm -rf /"})
    stream = sdk(gateway).chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True)
    seen_tool_calls = []
    with pytest.raises(openai.APIError) as raised:
        for chunk in stream:
            for choice in chunk.choices:
                seen_tool_calls += choice.delta.tool_calls or []
    assert "tool 'shell_exec' is not allowed for this caller: shell access is for ops" in str(raised.value)
    assert seen_tool_calls == []  # the tool call never reached the client


def test_denied_tool_call_in_a_responses_stream_is_an_error(gateway: RunningGateway, upstream: Any) -> None:
    upstream.script_tool_call("delete_customer", {"customer_id": 1})
    with pytest.raises(openai.APIError) as raised:
        for _ in sdk(gateway).responses.create(model="gpt-test", input="clean up", stream=True):
            pass
    assert "never done by an agent" in str(raised.value)


def test_required_approval_without_approvals_is_denied(gateway: RunningGateway, upstream: Any) -> None:
    upstream.script_tool_call("transfer_funds", {"amount": 5000, "to": "acme"})
    with pytest.raises(openai.PermissionDeniedError) as raised:
        sdk(gateway).chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert raised.value.body["reasons"][0].startswith("approval required: ")  # type: ignore[index]


def test_allowed_tool_call_streams_through(gateway: RunningGateway, upstream: Any) -> None:
    upstream.script_tool_call("transfer_funds", {"amount": 10, "to": "acme"})
    chunks = list(sdk(gateway).chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True))
    names = [
        tc.function.name
        for c in chunks
        for ch in c.choices
        for tc in (ch.delta.tool_calls or [])
        if tc.function and tc.function.name
    ]
    assert names == ["transfer_funds"]


def test_low_budget_routes_to_the_cheaper_model(fake_upstream: Any, tmp_path: Path) -> None:
    limits = {"teams": {"test": {"scopes": {"team": {"budget_usd": {"day": 0.5}}}}}}
    settings = settings_for(
        tmp_path,
        fake_upstream.base_url,
        extra={"limits.yaml": limits},
        limits={"enabled": True},
        policy={"watch": False},
    )
    fake_upstream.reset()
    with running_gateway(settings) as gw:
        answer = sdk(gw).chat.completions.create(model="gpt-test", messages=MESSAGES, max_tokens=50)
    assert answer.choices[0].message.content
    assert fake_upstream.last_request.json["model"] == "gpt-test-cheap"


def test_reload_while_requests_run_fails_none_and_each_has_one_revision(
    gateway: RunningGateway, upstream: Any
) -> None:
    service = gateway.component(Policy).service
    policy_file = service.manager.policies_dir / "policy.yaml"
    original = policy_file.read_text()
    deny_doc = yaml.safe_load(original)
    deny_doc["teams"]["test"]["models"] = ["mock-*"]
    admin = httpx.Client(base_url=gateway.url, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    revisions: dict[str, str] = {service.manager.engine.revision: "allow"}
    results: list[tuple[int, str]] = []
    stop = threading.Event()

    def client() -> None:
        c = sdk(gateway)
        while not stop.is_set():
            try:
                raw = c.chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES)
                results.append((raw.status_code, raw.headers["x-wardgate-policy-revision"]))
            except openai.APIStatusError as exc:
                results.append((exc.status_code, exc.response.headers.get("x-wardgate-policy-revision", "")))

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for i in range(6):
            policy_file.write_text(yaml.safe_dump(deny_doc) if i % 2 == 0 else original)
            resp = admin.post("/admin/policies/reload")
            assert resp.status_code == 200, resp.text
            revisions[resp.json()["revision"]] = "deny" if i % 2 == 0 else "allow"
    finally:
        stop.set()
        for t in threads:
            t.join()
        policy_file.write_text(original)
        admin.post("/admin/policies/reload")
    assert len(results) > 20
    assert {status for status, _ in results} <= {200, 403}  # none failed
    for status, revision in results:
        assert revisions[revision] == ("allow" if status == 200 else "deny")


def test_broken_policy_is_refused_on_reload_and_the_gateway_keeps_serving(
    gateway: RunningGateway, upstream: Any
) -> None:
    service = gateway.component(Policy).service
    before = service.manager.engine.revision
    broken = service.manager.rego_dir / "broken.rego"
    broken.write_text("package wardgate.broken\n\nx if {\n")
    try:
        resp = httpx.post(
            gateway.url + "/admin/policies/reload", headers={"authorization": f"Bearer {ADMIN_KEY}"}
        )
        assert resp.status_code == 422
        assert any("rego/broken.rego:" in e for e in resp.json()["error"]["errors"])
        raw = sdk(gateway).chat.completions.with_raw_response.create(model="gpt-test", messages=MESSAGES)
        assert raw.headers["x-wardgate-policy-revision"] == before
    finally:
        broken.unlink()


def test_opa_server_down_is_a_503(fake_upstream: Any, tmp_path: Path) -> None:
    with OpaServer() as opa:
        settings = settings_for(
            tmp_path,
            fake_upstream.base_url,
            policy={"engine": "opa", "opa_url": opa.url, "timeout_ms": 1000, "watch": False},
        )
        with running_gateway(settings) as gw:
            client = sdk(gw)
            assert client.chat.completions.create(model="gpt-test", messages=MESSAGES).choices
            opa.stop()
            with pytest.raises(openai.InternalServerError) as raised:
                client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert raised.value.status_code == 503 and raised.value.code == "policy_unavailable"
