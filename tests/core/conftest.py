"""A gateway per test module (embedded defaults, guards off) in front of the fake upstream."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness import PASS_THROUGH, RunningGateway, gateway_settings, running_gateway


@pytest.fixture(scope="module")
def gateway(fake_upstream: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("core")
    settings = gateway_settings(
        root, fake_upstream.base_url, server={"max_body_bytes": 64 * 1024}, **PASS_THROUGH
    )  # type: ignore[attr-defined]
    with running_gateway(settings) as gw:
        yield gw
