"""The ``wardgate`` command: serve the gateway, manage keys, and the subsystems' own commands."""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import typer

app = typer.Typer(help="Wardgate: policy and guardrail gateway for LLM agents.", no_args_is_help=True)


@app.callback()
def _commands() -> None:
    # A callback keeps ``wardgate`` a group when ``serve`` is its only command mounted
    # (``_mount_subcommands``): typer would otherwise run a lone command as the app itself,
    # and ``wardgate serve`` would refuse ``serve`` as an extra argument.
    pass


#: Time the calls cut at the end of the grace get to finish (settle, audit) before uvicorn cancels.
_CUT_SLACK_S = 3.0


@app.command()
def serve(
    host: str = typer.Option(None, help="Bind address (default from config: 127.0.0.1)."),
    port: int = typer.Option(None, help="Port (default from config: 8080)."),
    workers: int = typer.Option(None, help="Worker processes (default from config: 1)."),
    config: Path = typer.Option(
        None, "--config", "-c", help="Config file (default: $WARDGATE_CONFIG or wardgate.yaml)."
    ),
    debug: bool = typer.Option(
        False, "--debug", help="Log level debug, and a start-up failure shows its traceback."
    ),
) -> None:
    """Run the gateway with uvicorn (uvloop + httptools, with the gateway's connection limits).

    The whole configuration is checked first (``wardgate config check``): any problem refuses
    the start with one line per problem and exit code 2."""
    from gateway import logs
    from gateway.configcheck import ConfigError, data_problems, deployment_problems, load_settings
    from gateway.http import serve as server
    from gateway.http.protocol import HTTP_PROTOCOL

    if debug:
        os.environ["WARDGATE_SERVER__LOG_LEVEL"] = "debug"  # the workers read it too
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        _refuse(exc.problems)
    if config is not None:
        os.environ["WARDGATE_CONFIG"] = str(config)
    problems = deployment_problems(settings, workers) + data_problems(settings, quiet=True)
    if problems:
        _refuse(problems)
    host = host or settings.server.host
    port = port or settings.server.port
    workers = workers or settings.server.workers
    typer.echo(f"Wardgate listening on http://{host}:{port}/v1 ({workers} worker(s))")
    log_config = logs.uvicorn_log_config(settings.server.log_format)
    server.run(
        "gateway.app:create_app",
        **({"log_config": log_config} if log_config is not None else {}),
        factory=True,
        host=host,
        port=port,
        workers=workers,
        loop="uvloop",
        http=HTTP_PROTOCOL,
        ws="none",
        access_log=settings.server.access_log,
        proxy_headers=settings.server.forwarded_allow_ips is not None,
        forwarded_allow_ips=settings.server.forwarded_allow_ips,
        log_level=settings.server.log_level,
        # The drain cuts what is left at the grace's end (gateway/http/drain.py); uvicorn's own
        # timeout, which cancels tasks without finishing them, only backs that up.
        timeout_graceful_shutdown=settings.server.shutdown_grace_s + _CUT_SLACK_S,
    )


def _refuse(problems: list[str]) -> NoReturn:
    """The start is refused: every problem on its own line, no traceback, exit code 2."""
    typer.echo("wardgate: cannot start, the configuration has errors:", err=True)
    for problem in problems:
        typer.echo(f"  {problem}", err=True)
    raise typer.Exit(2)


def _mount_subcommands(argv: Sequence[str]) -> None:
    """The components' sub-command groups (``Component.commands``) and ``config``, imported
    when the command runs, not when this module is imported (keeps it light).

    Only the group the command line names is imported (``wardgate keys list``: the keys
    CLI); ``serve`` needs none of them. Importing every group cost each call ~0.3 s of CPU
    (the audit, policy and cache CLIs and what they import), paid by every gateway process
    and every test that runs a command. Without a command, or with one this list does not
    know, every group is mounted, so ``--help`` lists them all and a typo is answered by
    typer with every choice."""
    from gateway.components import compose

    groups = {name: module for component in compose() for name, module in component.commands}
    groups["config"] = "gateway.config_cli"
    named = next((arg for arg in argv if not arg.startswith("-")), None)
    if named == "serve":
        return
    for name, module in groups.items():
        if named not in groups or named == name:
            app.add_typer(importlib.import_module(module).app, name=name)


def main() -> None:
    _mount_subcommands(sys.argv[1:])
    app()
