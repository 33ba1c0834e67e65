"""A pass-through gateway per fuzz module, in front of the session's fake upstream.

The body limit stays at its default (4 MiB) so the size tests probe the real edge.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness import PASS_THROUGH, RunningGateway, gateway_settings, running_gateway


@pytest.fixture(scope="module")
def fuzz_gateway(fake_upstream: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("fuzz")
    settings = gateway_settings(root, fake_upstream.base_url, **PASS_THROUGH)  # type: ignore[attr-defined]
    with running_gateway(settings) as gw:
        yield gw
