"""``wardgate_circuit_state`` per deployment (0 closed, 1 half-open, 2 open), as the README says.

The real gateway over HTTP: a deployment whose upstream refuses connections opens its
circuit after ``circuit_failures`` failed calls, ``/metrics`` shows it as 2 while the other
deployments stay 0, and it reads 1 (half-open) once ``circuit_open_s`` has passed.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from gateway.http.launch import free_port
from gateway.settings import Settings
from tests.harness import PASS_THROUGH, TEST_KEY, make_policies_dir, running_gateway, upstream_models


def _states(url: str) -> dict[str, float]:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    return {
        m.group(1): float(m.group(2))
        for m in re.finditer(r'^wardgate_circuit_state\{deployment="([^"]+)"\} (\S+)$', text, re.M)
    }


def test_an_open_circuit_reads_2_and_half_open_1(tmp_path: Path, fake_upstream: Any) -> None:
    models = upstream_models(fake_upstream.base_url)
    dead = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens: connection refused
    models["models"]["gpt-dead"] = {
        "deployments": [{"name": "dead-east", "provider": "openai", "base_url": dead}]
    }
    policies, rego = make_policies_dir(tmp_path, fake_upstream.base_url, models=models)
    settings = Settings(
        policies_dir=policies,
        rego_dir=rego,
        data_dir=tmp_path / "data",
        providers={"max_attempts": 1, "circuit_failures": 2, "circuit_open_s": 1.0, "timeout_s": 5.0},
        **PASS_THROUGH,
    )
    with running_gateway(settings) as gw:
        url = gw.base_url.removesuffix("/v1")
        states = _states(url)
        assert states["dead-east"] == 0.0 and set(states.values()) == {0.0}
        client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
        for _ in range(2):
            with pytest.raises(openai.APIStatusError):
                client.chat.completions.create(model="gpt-dead", messages=[{"role": "user", "content": "hi"}])
        states = _states(url)
        assert states["dead-east"] == 2.0
        assert all(v == 0.0 for name, v in states.items() if name != "dead-east"), states
        time.sleep(1.1)
        assert _states(url)["dead-east"] == 1.0
