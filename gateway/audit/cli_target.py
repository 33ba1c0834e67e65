"""The audit store a CLI command works on: the settings (config file / env) plus overrides.

Shared by ``verify`` (cli.py) and ``anchor`` (anchor_cli.py), so neither imports the other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import typer
from rich.console import Console


def store_settings(
    config: Path | None, backend: str | None, sqlite: Path | None, dsn: str | None, schema: str | None
) -> tuple[Any, Any]:
    """The audit settings (config file / env, then the overrides) and the store they name."""
    from gateway.audit.store import make_store
    from gateway.configcheck import settings_for_command
    from gateway.settings import Settings

    settings = cast(Settings, settings_for_command(config))  # a typo must not verify another store
    audit = settings.audit.model_copy(
        update={
            k: v
            for k, v in {
                "backend": backend,
                "sqlite_path": sqlite,
                "postgres_dsn": dsn,
                "postgres_schema": schema,
            }.items()
            if v is not None
        }
    )
    if audit.backend == "log":
        raise typer.BadParameter("the log backend has no store to verify; use --file with the shipped log")
    if audit.backend == "sqlite" and not audit.resolved_sqlite_path(settings.data_dir).exists():
        Console(stderr=True).print(
            f"[red]no audit store at {audit.resolved_sqlite_path(settings.data_dir)}[/red]"
        )
        raise typer.Exit(2)
    return audit, make_store(audit, settings.data_dir)
