"""A gateway with the response cache on, behind every guard, for end-to-end cache tests.

Limits (memory, so a hit's booking is visible), redaction (e-mails restored), the shipped
policies (exact cache for temperature 0 or a seed), approvals (``defer``: a hold answers 409
at once) and the audit log (SQLite: the spend report) are all on. The cache's clock is a
``FakeClock`` so TTL tests move time instead of sleeping.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.app import create_app
from gateway.cache.component import Cache
from gateway.components import compose
from gateway.http.launch import ServedApp, serve_app
from gateway.settings import Settings
from tests.harness import _sha, default_keys, gateway_settings
from tests.waiting import FakeClock

#: A second caller of team ``test`` (the test key's team), another user.
SECOND_KEY = "wg-test-second-user-000000000000000000"


def cache_keys() -> dict[str, Any]:
    keys = default_keys()
    keys["keys"].append(
        {
            "id": "second",
            "sha256": _sha(SECOND_KEY),
            "team": "test",
            "user": "second",
            "roles": ["developer"],
            "models": ["*"],
        }
    )
    return keys


def cache_settings(root: Path, upstream_url: str, **overrides: Any) -> Settings:
    sections: dict[str, Any] = {
        "cache": {"enabled": True, "max_entry_bytes": 65536},
        "limits": {"enabled": True, "backend": "memory"},
        "approvals": {"enabled": True, "default_mode": "defer"},
        "audit": {"enabled": True},
    }
    for name, value in overrides.items():
        sections[name] = {**sections.get(name, {}), **value}
    settings = gateway_settings(root, upstream_url, **sections)
    (settings.policies_dir / "keys.yaml").write_text(yaml.safe_dump(cache_keys()))
    return settings


def serve_with_clock(settings: Settings, clock: FakeClock) -> Any:
    components = compose()
    for component in components:
        if isinstance(component, Cache):
            component.clock = clock
    return serve_app(create_app(settings, components), startup_timeout_s=120)


@pytest.fixture(scope="module")
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(scope="module")
def gateway(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: Any, clock: FakeClock
) -> Iterator[ServedApp]:
    root = tmp_path_factory.mktemp("cache")
    with serve_with_clock(cache_settings(root, fake_upstream.base_url), clock) as served:
        yield served
