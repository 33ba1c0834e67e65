"""A deployment whose ``api_key_env`` is unset is dropped, and that is never silent.

The model is not served (404), so the operator must be told which model, which deployment
and which variable: a warning at load, and the ``models`` check of ``/readyz`` (still ready).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import httpx
import pytest

from gateway.models import ModelCatalog
from gateway.settings import Settings
from tests.harness import PASS_THROUGH, TEST_KEY, make_policies_dir, running_gateway, upstream_models

UNSET = "WARDGATE_TEST_NEVER_SET_KEY"


def models_doc(base_url: str) -> dict[str, Any]:
    doc = upstream_models(base_url)
    doc["models"]["gpt-keyless"] = {
        "deployments": [{"name": "east", "provider": "openai", "base_url": base_url, "api_key_env": UNSET}]
    }
    doc["models"]["gpt-test"]["deployments"].append(
        {"name": "west", "provider": "openai", "base_url": base_url, "api_key_env": UNSET}
    )
    return doc


def test_load_warns_naming_model_deployment_and_variable(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    policies, _ = make_policies_dir(tmp_path, "http://127.0.0.1:9", models=models_doc("http://127.0.0.1:9"))
    with caplog.at_level(logging.WARNING, logger="wardgate.models"):
        catalog = ModelCatalog.load(policies / "models.yaml")
    assert "gpt-keyless" not in catalog.names() and "gpt-test" in catalog.names()
    lines = [r.getMessage() for r in caplog.records]
    dropped = [m for m in lines if "'gpt-keyless'" in m]
    assert len(dropped) == 1 and "'east'" in dropped[0] and UNSET in dropped[0] and "404" in dropped[0]
    kept = [m for m in lines if "'gpt-test'" in m]
    assert len(kept) == 1 and "'west'" in kept[0] and UNSET in kept[0] and "404" not in kept[0]
    assert catalog.status() == (
        f"ok; disabled for an unset API key variable: gpt-keyless/east ({UNSET} unset), "
        f"gpt-test/west ({UNSET} unset)"
    )
    monkeypatch.setenv(UNSET, "sk-now-set")
    assert ModelCatalog.load(policies / "models.yaml").status() is None


def test_readyz_names_the_disabled_deployments_and_the_model_is_a_404(
    tmp_path: Path, fake_upstream: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    url = fake_upstream.base_url
    policies, rego = make_policies_dir(tmp_path, url, models=models_doc(url))
    settings = Settings(policies_dir=policies, rego_dir=rego, data_dir=tmp_path / "data", **PASS_THROUGH)
    with running_gateway(settings) as gw:
        root = gw.base_url.removesuffix("/v1")
        ready = httpx.get(f"{root}/readyz", timeout=10)
        assert ready.status_code == 200
        assert f"gpt-keyless/east ({UNSET} unset)" in ready.json()["checks"]["models"]
        auth = {"Authorization": f"Bearer {TEST_KEY}"}
        assert httpx.get(f"{gw.base_url}/models/gpt-keyless", headers=auth, timeout=10).status_code == 404
