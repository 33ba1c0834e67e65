"""Shared fixtures: service checks, the fake OpenAI upstream, a gateway on a free port."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

# CI explores the same examples every run, so a landing never hinges on a random draw;
# developers (no CI variable) get fresh examples each run and find new cases.
settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

REDIS_ADDR = ("127.0.0.1", 6379)
PG_ADDR = ("127.0.0.1", 5432)


def _answers(addr: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(addr, timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_url() -> str:
    if not _answers(REDIS_ADDR):
        pytest.fail("Redis does not answer on 127.0.0.1:6379: run `make services` (see docs/services.md)")
    return "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def postgres_dsn() -> str:
    if not _answers(PG_ADDR):
        pytest.fail(
            "PostgreSQL does not answer on 127.0.0.1:5432: run `make services` (see docs/services.md)"
        )
    return "postgresql://root@127.0.0.1:5432/test"


@pytest.fixture
def key_prefix() -> str:
    """A Redis key prefix private to one test."""
    return f"wgtest:{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="session")
def fake_upstream() -> Iterator[object]:
    from tests.fake_openai import FakeOpenAI

    fake = FakeOpenAI()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def upstream(fake_upstream: object) -> Iterator[object]:
    """The session's fake upstream, with recorded requests and faults reset for this test.

    Reset again afterwards: a fault this test set and did not use up must not reach the next
    file's module-scoped gateway, which uses ``fake_upstream`` directly (whatever ran before it
    on this worker)."""
    fake_upstream.reset()  # type: ignore[attr-defined]
    yield fake_upstream
    fake_upstream.reset()  # type: ignore[attr-defined]


@pytest.fixture
def tmp_root(tmp_path: Path) -> Path:
    return tmp_path


#: Test files that take longest (seconds of wall time, mostly waiting: topologies, browsers,
#: child gateways), measured per file with ``--junitxml`` (whole suite, 2 workers;
#: the top: e2e topology ~360 s, limits e2e ~250 s at load ~20). ``make test`` runs with
#: ``--dist loadfile --no-loadscope-reorder`` (pyproject addopts): xdist hands files out in
#: collection order, and these come first, so a long file never starts last and ends the run
#: alone while the other worker idles. Keep the longest at the top; a missing path is ignored.
SLOW_FILES_FIRST: tuple[str, ...] = (
    "tests/e2e/test_e2e_topology.py",
    "tests/limits/test_limits_e2e.py",
    "tests/core/test_shutdown_drain.py",
    "tests/approvals/test_approvals_e2e.py",
    "tests/approvals/test_approvals_store.py",
    "tests/deploy/test_deploy_entrypoint.py",
    "tests/approvals/test_approvals_single_use_and_joining.py",
    "tests/console/test_console_explorer_browser.py",
    "tests/audit/test_audit_export_large.py",
    "tests/approvals/test_approvals_processes.py",
    "tests/core/test_core_keys_redis_backend.py",
    "tests/core/test_metrics_per_deployment_multiprocess.py",
    "tests/console/test_console_approvals_browser.py",
    "tests/core/test_core_ops.py",
    "tests/e2e/test_e2e_redis_cluster.py",
    "tests/approvals/test_approvals_reviewers_see_real_values.py",
    "tests/orchestrator/test_orchestrator_mcp.py",
    "tests/cache/test_cache_redis.py",
    "tests/abuse/test_abuse_bounded_under_attack.py",
    "tests/core/test_strict_config.py",
    "tests/policy/test_policy_reload.py",
    "tests/core/test_shared_state_or_refused.py",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Move the items of ``SLOW_FILES_FIRST`` to the front (stable: each file keeps its order)."""
    rank = {path: i for i, path in enumerate(SLOW_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::", 1)[0], len(rank)))
