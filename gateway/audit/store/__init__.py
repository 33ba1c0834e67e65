"""Audit stores behind one interface; ``make_store`` picks one from the settings."""

from __future__ import annotations

from pathlib import Path

from gateway.audit.config import AuditSettings
from gateway.audit.store.base import Anchor, AuditStore, Filters, QueryUnsupported, StoredRow

__all__ = ["Anchor", "AuditStore", "Filters", "QueryUnsupported", "StoredRow", "make_store"]


def make_store(settings: AuditSettings, data_dir: Path) -> AuditStore:
    if settings.backend == "sqlite":
        from gateway.audit.store.sqlite import SQLiteStore

        return SQLiteStore(settings.resolved_sqlite_path(data_dir), settings.sqlite_synchronous)
    if settings.backend == "postgres":
        from gateway.audit.store.postgres import PostgresStore

        return PostgresStore(
            settings.postgres_dsn,
            settings.postgres_schema,
            settings.postgres_pool_size,
            settings.postgres_synchronous_commit,
        )
    from gateway.audit.store.log import LogStore

    return LogStore(settings.log_path)
