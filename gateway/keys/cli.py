"""``wardgate keys``: create a virtual key from the command line (the admin API's ``POST /admin/keys``)."""

from __future__ import annotations

from pathlib import Path

import typer

from gateway.keys.keyfile import KeyIdTaken, add_key
from gateway.keys.store import KeyFileError, default_key_id, hash_key, new_key, utc_now

app = typer.Typer(help="Virtual keys.", no_args_is_help=True)


@app.command("create")
def keys_create(
    team: str = typer.Option(..., help="Team of the key."),
    user: str = typer.Option(None, help="User the key belongs to."),
    key_id: str = typer.Option(None, "--id", help="Key id (default: derived from team and user)."),
    models: list[str] = typer.Option(None, "--model", help="Allowed model (glob); repeat. Default: all."),
    roles: list[str] = typer.Option(None, "--role", help="Role for policies; repeat."),
    file: Path = typer.Option(Path("policies/keys.yaml"), help="keys.yaml to append to."),
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
    try:
        add_key(file, entry)
    except KeyIdTaken as exc:
        raise typer.BadParameter(
            f"a key with id '{exc}' exists already (ids are never reused)", param_hint="--id"
        ) from exc
    except KeyFileError as exc:
        raise typer.BadParameter(f"{file} is malformed, fix it first: {exc}", param_hint="--file") from exc
    typer.echo(f"Created key '{kid}' for team '{team}' in {file}.")
    typer.echo("Store it now; it is not shown again and only its hash is kept:")
    typer.echo(key)
