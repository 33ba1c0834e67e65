"""``wardgate keys create|revoke|list``: the admin API's key management, from the command line.

Writes go to the backend of the configuration (``--config``, else ``$WARDGATE_CONFIG``, else
``wardgate.yaml``): ``keys.backend: file`` edits ``<policies_dir>/keys.yaml`` (``--file``
names another), ``keys.backend: redis|postgres`` writes to the shared store every replica follows.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer

from gateway.keys.backend import KeysUnavailable, adding
from gateway.keys.keyfile import KeyIdTaken
from gateway.keys.store import KeyFileError, KeyStore, default_key_id, hash_key, new_key, utc_now

app = typer.Typer(help="Virtual keys.", no_args_is_help=True)
T = TypeVar("T")

_CONFIG = typer.Option(
    None, "--config", "-c", help="Config file (default: $WARDGATE_CONFIG or wardgate.yaml)."
)
_FILE = typer.Option(None, help="keys.yaml to edit (file backend; default: <policies_dir>/keys.yaml).")


def _run(config: Path | None, file: Path | None, job: Callable[[Any], Any]) -> Any:
    """Run ``job(backend)`` against the configured keys backend."""
    from gateway.configcheck import settings_for_command
    from gateway.keys.config import KeysSettings
    from gateway.registry import section

    settings = settings_for_command(config)  # a typo must not send the key to another backend
    cfg = section(settings, "keys", KeysSettings)
    path = file or settings.policies_dir / "keys.yaml"

    async def main() -> Any:
        if cfg.backend != "file" and file is None:
            from gateway.keys.component import shared_backend

            backend: Any = shared_backend(cfg, KeyStore({}, {}), path)
            try:
                return await job(backend)
            finally:
                await backend.close()
        from gateway.keys.reload import KeyReloader

        return await job(KeyReloader(KeyStore({}, {}), path))

    try:
        return asyncio.run(main())
    except KeysUnavailable as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    except KeyFileError as exc:
        typer.echo(f"error: {path} is malformed, fix it first: {exc}", err=True)
        raise typer.Exit(1) from exc


@app.command("create")
def keys_create(
    team: str = typer.Option(..., help="Team of the key."),
    user: str = typer.Option(None, help="User the key belongs to."),
    key_id: str = typer.Option(None, "--id", help="Key id (default: derived from team and user)."),
    models: list[str] = typer.Option(None, "--model", help="Allowed model (glob); repeat. Default: all."),
    roles: list[str] = typer.Option(None, "--role", help="Role for policies; repeat."),
    config: Path = _CONFIG,
    file: Path = _FILE,
) -> None:
    """Create a virtual key: prints it once and stores only its SHA-256 hash."""
    key = new_key()
    kid = key_id or default_key_id(team, user)
    entry = {
        "id": kid,
        "sha256": hash_key(key),
        "team": team,
        "user": user,
        "roles": roles or [],
        "models": models or ["*"],
        "created_at": utc_now(),
        "source": "cli",
    }

    async def job(backend: Any) -> str:
        await backend.edit(adding(entry))
        return str(backend.where)

    try:
        where = _run(config, file, job)
    except KeyIdTaken as exc:
        raise typer.BadParameter(
            f"a key with id '{exc}' exists already (ids are never reused)", param_hint="--id"
        ) from exc
    typer.echo(f"Created key '{kid}' for team '{team}' in {where}.")
    typer.echo("Store it now; it is not shown again and only its hash is kept:")
    typer.echo(key)


@app.command("revoke")
def keys_revoke(
    key_id: str = typer.Argument(..., help="Id of the key."), config: Path = _CONFIG, file: Path = _FILE
) -> None:
    """Revoke a virtual key (the entry stays, ``disabled``; its id is never reused)."""

    def change(doc: dict[str, Any]) -> bool:
        for entry in doc.get("keys") or []:
            if isinstance(entry, dict) and str(entry.get("id")) == key_id:
                if entry.get("disabled"):
                    return False
                entry.update(disabled=True, revoked_at=utc_now(), revoked_by="cli")
                return True
        raise KeyError(key_id)

    async def job(backend: Any) -> tuple[bool, str]:
        return await backend.edit(change), str(backend.where)

    try:
        revoked, where = _run(config, file, job)
    except KeyError as exc:
        typer.echo(f"error: no virtual key with id '{key_id}'", err=True)
        raise typer.Exit(1) from exc
    typer.echo(f"Revoked key '{key_id}' in {where}." if revoked else f"Key '{key_id}' was revoked already.")


@app.command("list")
def keys_list(config: Path = _CONFIG, file: Path = _FILE) -> None:
    """List virtual keys (id, team, user, state); never keys or their hashes."""

    async def job(backend: Any) -> list[dict[str, Any]]:
        return list(await backend.list_entries())

    for entry in _run(config, file, job):
        state = "revoked" if entry.get("disabled") else "active"
        typer.echo(f"{entry.get('id')}\tteam={entry.get('team')}\tuser={entry.get('user') or '-'}\t{state}")
