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
