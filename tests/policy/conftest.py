"""Fixtures of the policy tests: the shipped policy set, engines of every kind, OPA servers."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.policy.engines.base import PolicyEngine
from gateway.policy.service import PolicyService
from gateway.policy.source import PolicySet, load_policy_set
from tests.opa_server import OpaServer
from tests.policy.helpers_policy import REPO, build_service


@pytest.fixture(scope="session")
def shipped_set() -> PolicySet:
    return load_policy_set(REPO / "rego", REPO / "policies")


@pytest.fixture
def opa_servers() -> Iterator[Callable[[], OpaServer]]:
    """A factory of OPA-compatible servers (each on its own port), all stopped after the test."""
    servers: list[OpaServer] = []

    def start() -> OpaServer:
        server = OpaServer().start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def policy_dirs(tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of rego/ and policies/ (without keys.yaml) a test may edit."""
    rego = tmp_path / "rego"
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "rego", rego)
    policies.mkdir()
    shutil.copy(REPO / "policies" / "policy.yaml", policies / "policy.yaml")
    return rego, policies


@pytest.fixture
async def make_service() -> AsyncIterator[Callable[..., Any]]:
    """``build_service`` for one test; every engine it built is closed afterwards."""
    engines: list[PolicyEngine] = []

    async def build(engine: PolicyEngine, *args: Any, **kwargs: Any) -> PolicyService:
        engines.append(engine)
        return await build_service(engine, *args, **kwargs)

    yield build
    for engine in engines:
        await engine.close()
