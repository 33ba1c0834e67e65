"""Fixtures for the audit tests: a fresh store per test, on SQLite and on real PostgreSQL."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from audit_helpers import PG_DSN, pg_execute

from gateway.audit.config import AuditSettings
from gateway.audit.service import AuditService
from gateway.audit.store import make_store


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    try:
        pg_execute("SELECT 1")
    except (OSError, asyncpg.PostgresError) as exc:
        pytest.fail(
            f"PostgreSQL at {PG_DSN} is not reachable ({exc}). Start it with: "
            "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"
        )
    return PG_DSN


@pytest.fixture
def pg_schema(pg_dsn: str) -> Any:
    """A schema of our own, dropped after the test (never touch anyone else's)."""
    name = f"wgtest_audit_{uuid.uuid4().hex[:12]}"
    yield name
    pg_execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture(params=["sqlite", "postgres"])
def audit_settings(request: pytest.FixtureRequest, tmp_path: Path) -> AuditSettings:
    if request.param == "postgres":
        schema = request.getfixturevalue("pg_schema")
        return AuditSettings(backend="postgres", postgres_dsn=PG_DSN, postgres_schema=schema)
    return AuditSettings(backend="sqlite", sqlite_path=tmp_path / "audit.db")


ServiceFactory = Callable[..., Awaitable[AuditService]]


@pytest.fixture
async def make_service(audit_settings: AuditSettings, tmp_path: Path) -> AsyncIterator[ServiceFactory]:
    """Start services on the test's store (several = several gateway processes on one store)."""
    started: list[AuditService] = []

    async def factory(metrics: Any = None, **overrides: Any) -> AuditService:
        settings = audit_settings.model_copy(update=overrides)
        service = AuditService(settings, make_store(settings, tmp_path), metrics=metrics)
        await service.start()
        started.append(service)
        return service

    yield factory
    for service in reversed(started):
        with contextlib.suppress(Exception):
            await service.close()
