"""``wardgate audit grant`` and ``wardgate audit prune``: the two-role PostgreSQL deployment.

The gateway writes as a role that may only append (``store/pg_guard.py``); retention runs
here, as a separate pruner role, out of the gateway's reach. ``grant`` prints (or, with
``--apply``, runs as the schema's owner) the migration and both roles' grants; ``prune`` is
what cron runs as the pruner: it opens a chain of its own (instance ``retention``), seals
the prune's record (the retention event: chains, seq ranges, heads before pruning) in it,
deletes, closes the chain and, when ``audit.anchor_to`` is set, anchors every head.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.console import Console

from gateway.audit.cli_target import store_settings

CONFIG = typer.Option(None, "--config", help="wardgate.yaml (default: WARDGATE_CONFIG / env).")
DSN = typer.Option(None, help="Override the PostgreSQL DSN.")
SCHEMA = typer.Option(None, help="Override the PostgreSQL schema.")


def grant_cmd(
    writer: str = typer.Option(..., "--writer", help="The gateway's role (append only)."),
    pruner: str = typer.Option(..., "--pruner", help="The retention role (may delete below an anchor)."),
    apply: bool = typer.Option(False, "--apply", help="Migrate and grant now (connect as the owner)."),
    config: Path = CONFIG,
    dsn: str = DSN,
    schema: str = SCHEMA,
) -> None:
    """Print (or --apply) the grants that make the audit tables append-only for the gateway."""
    from gateway.audit.store.pg_guard import grant_sql
    from gateway.audit.store.postgres import PostgresStore

    settings, store = store_settings(config, "postgres", None, dsn, schema)
    try:
        stmts = grant_sql(settings.postgres_schema, writer, pruner)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if not apply:
        typer.echo("\n".join(f"{s};" for s in stmts))
        return
    assert isinstance(store, PostgresStore)
    try:
        asyncio.run(store.apply_grants(writer, pruner))
    except Exception as exc:  # MigrationRefused, asyncpg errors (a missing role, no rights), OSError
        Console(stderr=True).print(f"[red]grant failed: {type(exc).__name__}: {exc}[/red]")
        raise typer.Exit(2) from None
    Console().print(
        f"schema {settings.postgres_schema}: {writer} may append, {pruner} may also prune ({len(stmts)} statements)"
    )


async def _prune(config: Path | None, dsn: str | None, schema: str | None, days: float | None) -> int:
    from gateway.audit.service import AuditService

    backend = "postgres" if dsn is not None else None
    settings, _ = store_settings(config, backend, None, dsn, schema)
    settings = settings.model_copy(
        update={"shard_id": "retention"} | ({"retention_days": days} if days is not None else {})
    )
    if settings.retention_days is None:
        raise typer.BadParameter("no retention window: pass --days or set audit.retention_days")
    _, store = store_settings(config, settings.backend, None, dsn, schema)
    service = AuditService(settings, store)
    await service.start()
    try:
        deleted = await service.prune()
        captures = await service.prune_captures()  # own retention, outside the chain
        if captures:
            Console().print(f"pruned {captures} content capture(s)")
        if settings.anchor_to is not None:
            await service.anchor()
    finally:
        await service.close()
    return deleted


def prune_cmd(
    days: float = typer.Option(
        None, "--days", help="Delete events older than this (default: audit.retention_days)."
    ),
    config: Path = CONFIG,
    dsn: str = DSN,
    schema: str = SCHEMA,
) -> None:
    """Run retention once (as the pruner role), leaving the rest verifiable."""
    deleted = asyncio.run(_prune(config, dsn, schema, days))
    Console().print(f"pruned {deleted} event(s)")
