"""``wardgate config …``: validate the configuration without starting, show the effective one.

wardgate config check [--config F]   settings, env, policies/*.yaml, Rego, models, keys; exit 1 on any error
wardgate config show  [--config F]   the effective settings as YAML, secrets masked
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
import yaml

app = typer.Typer(
    help="Configuration: check it without starting, show the effective settings.", no_args_is_help=True
)

_CONFIG = typer.Option(
    None, "--config", "-c", help="Config file (default: $WARDGATE_CONFIG or wardgate.yaml)."
)


@app.command("check")
def check_command(config: Path = _CONFIG) -> None:
    """Validate everything the gateway reads at start; list every error, exit 1 if any."""
    from gateway.configcheck import check_all

    problems = check_all(config)
    for problem in problems:
        typer.echo(f"error: {problem}", err=True)
    if problems:
        typer.echo(f"{len(problems)} error(s): the gateway would refuse to start.", err=True)
        raise typer.Exit(1)
    typer.echo("configuration OK")


@app.command("show")
def show_command(config: Path = _CONFIG) -> None:
    """Print the effective settings (file, env and defaults merged) as YAML, secrets masked."""
    from gateway.configcheck import ConfigError, load_settings

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        for problem in exc.problems:
            typer.echo(f"error: {problem}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(yaml.safe_dump(_masked(settings.model_dump(mode="json")), sort_keys=False), nl=False)


#: Values under keys like these are shown as ``'**********'`` (``SecretStr`` already is).
_SECRET_WORDS = ("token", "secret", "password", "salt", "dsn", "url")


def _masked(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _masked(v, str(k)) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v, key) for v in value]
    if isinstance(value, str) and value and any(w in key.lower() for w in _SECRET_WORDS):
        return _mask_text(value, key)
    return value


def _mask_text(value: str, key: str) -> str:
    """URLs keep their scheme, host and path (what an operator checks); their password goes."""
    if "url" in key.lower() or "dsn" in key.lower():
        from urllib.parse import urlsplit, urlunsplit

        parts = urlsplit(value)
        if parts.password:
            host = parts.hostname or ""
            netloc = f"{parts.username or ''}:****@{host}" + (f":{parts.port}" if parts.port else "")
            return urlunsplit(parts._replace(netloc=netloc))
        return value
    return "**********"
