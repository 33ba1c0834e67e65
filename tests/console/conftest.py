"""Console fixtures: a gateway per module, browserless clients, and the browser (browser.py).

``console_gateway`` serves the real gateway (policies, approvals, audit, console) once per
test module on the session's fake upstream. Browser fixtures (``browser``, ``signed_in``,
``axe_check``, ``shot``) live in ``tests/console/browser.py`` and are re-exported here so
every console test file can use them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.console.browser import axe_check, browser, shot, signed_in  # noqa: F401 (fixtures)
from tests.console.console_app import Browserless, console_settings
from tests.harness import RunningGateway, running_gateway


@pytest.fixture(scope="module")
def console_gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream: Any) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("console")
    with running_gateway(console_settings(root, fake_upstream.base_url)) as gw:
        yield gw


@pytest.fixture
def as_role(console_gateway: RunningGateway) -> Iterator[Any]:
    """``as_role(key)``: a browserless client signed in with that admin key (closed after)."""
    made: list[Browserless] = []

    def make(key: str | None) -> Browserless:
        client = Browserless(console_gateway.url, key)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
