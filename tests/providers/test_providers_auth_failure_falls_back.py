"""A deployment whose key the provider refuses (401/403) falls back to the model's next
deployment, which has its own key, and the failed attempt is counted.

A real gateway (in a thread) with two deployments of one model on the fake upstream, each
with its own key; the fake refuses one request with the status under test.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from tests.fake_openai import FakeOpenAI
from tests.harness import PASS_THROUGH, TEST_KEY, RunningGateway, gateway_settings, running_gateway
from tests.waiting import wait_until

OTHER_KEY = "sk-second-deployment-key-0123456789abcdef"


def _models(base_url: str) -> dict[str, object]:
    dep = {"provider": "openai", "base_url": base_url}
    return {
        "models": {
            "gpt-test": {
                "endpoints": ["chat.completions", "responses"],
                "deployments": [
                    {**dep, "name": "primary", "api_key_env": "WARDGATE_TEST_PROVIDER_KEY"},
                    {**dep, "name": "secondary", "api_key_env": "WARDGATE_TEST_SECOND_KEY"},
                ],
            },
            "gpt-test-cheap": {
                "endpoints": ["chat.completions"],
                "deployments": [{**dep, "api_key_env": "WARDGATE_TEST_PROVIDER_KEY"}],
            },
        }
    }


@pytest.fixture(scope="module")
def gw(fake_upstream: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    import os

    os.environ["WARDGATE_TEST_SECOND_KEY"] = OTHER_KEY
    root: Path = tmp_path_factory.mktemp("auth-fallback")
    settings = gateway_settings(root, fake_upstream.base_url, providers={"max_attempts": 3}, **PASS_THROUGH)
    (root / "policies" / "models.yaml").write_text(yaml.safe_dump(_models(fake_upstream.base_url)))
    with running_gateway(settings) as running:
        yield running


def _chat(gw: RunningGateway, model: str = "gpt-test", stream: bool = False) -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream},
        headers={"authorization": f"Bearer {TEST_KEY}"},
        timeout=10,
    )


def _failed(gw: RunningGateway, code: str) -> float:
    total = 0.0
    for name in ("primary", "secondary"):
        labels = {"deployment": name, "code": code}
        total += gw.ctx.registry.get_sample_value("wardgate_upstream_failed_attempts_total", labels) or 0.0
    return total


@pytest.mark.parametrize(("status", "stream"), [(401, False), (403, False), (401, True)])
def test_a_refused_key_falls_back_to_the_next_deployment_and_is_counted(
    gw: RunningGateway, upstream: FakeOpenAI, status: int, stream: bool
) -> None:
    before = _failed(gw, "upstream_auth_failed")
    upstream.fault("status", times=1, status=status, message="Incorrect API key provided")
    resp = _chat(gw, stream=stream)
    assert resp.status_code == 200, resp.text
    first, second = upstream.requests
    assert first.headers["authorization"] != second.headers["authorization"]  # two deployments, two keys
    # Metrics are recorded after the answer is sent (deferred): wait for the count, then check it.
    wait_until(lambda: _failed(gw, "upstream_auth_failed") >= before + 1)
    assert _failed(gw, "upstream_auth_failed") == before + 1


def test_with_no_other_deployment_the_refusal_is_a_502_after_one_try(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    upstream.fault("status", times=1, status=401, message="Incorrect API key provided")
    resp = _chat(gw, model="gpt-test-cheap")
    assert resp.status_code == 502
    assert resp.json()["error"]["code"] == "upstream_auth_failed"
    assert len(upstream.requests) == 1  # the same key would be refused again: not retried


def test_the_other_4xx_are_the_requests_fault_and_do_not_fall_back(
    gw: RunningGateway, upstream: FakeOpenAI
) -> None:
    upstream.fault("status", times=1, status=400, message="bad temperature", param="temperature")
    resp = _chat(gw)
    assert resp.status_code == 400 and len(upstream.requests) == 1
