"""``python -m orchestrator``: demo, run, resume, report, load.

    python -m orchestrator demo [--interactive] [--approval-mode hold|defer] [--tools local|mcp] [--base-url URL]
    python -m orchestrator run [--scenario support] [--config orchestrator.yaml]
    python -m orchestrator resume RUN_ID
    python -m orchestrator report RUN_ID [--json]
    python -m orchestrator load --runs N --concurrency C [--duration S] [--base-url URL]

``run``/``resume``/``report`` use the checkpoint database (``--db``, default
``.wardgate/orchestrator.db``) and the keys from the config file or the environment
(``WARDGATE_API_KEY``, ``WARDGATE_AGENT_KEY_<AGENT>``, ``WARDGATE_ADMIN_KEY``).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import orjson
import typer
from rich.console import Console

from orchestrator.config import LOAD_CONCURRENCY, AgentConfig, load_config
from orchestrator.render import LiveListener, print_report

if TYPE_CHECKING:  # imported lazily at run time: `--help` stays fast
    from orchestrator.config import OrchestratorConfig
    from orchestrator.report import RunReport
    from orchestrator.service import Orchestrator

T = TypeVar("T")

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

app = typer.Typer(
    help="Wardgate's reference multi-agent orchestrator.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
CONFIG = typer.Option(None, "--config", "-c", help="YAML config (base_url, api_key, agents.<name>.key, ...).")
BASE_URL = typer.Option(None, "--base-url", help="Gateway base URL, e.g. http://127.0.0.1:8080/v1.")
MODEL = typer.Option(
    None, "--model", help="Model for every agent (default: mock-chat, or gpt-4o-mini with OPENAI_API_KEY)."
)
DB = typer.Option(None, "--db", help="Checkpoint SQLite file (default .wardgate/orchestrator.db).")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop where available; configuration errors end the command with a message."""
    from orchestrator.eventloop import run

    try:
        return run(coro)
    except (ValueError, KeyError, FileNotFoundError) as exc:
        Console(stderr=True).print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from exc


@app.command()
def demo(
    interactive: bool = typer.Option(
        False, "--interactive", "-i", help="Ask me to approve instead of auto-approving."
    ),
    approval_mode: str = typer.Option(
        "hold", "--approval-mode", help="hold (request waits) or defer (409 + poll)."
    ),
    deny: bool = typer.Option(False, "--deny", help="The automatic reviewer denies the refund instead."),
    base_url: str = BASE_URL,
    model: str = MODEL,
    config: Path = CONFIG,
    keep: bool = typer.Option(False, "--keep", help="Keep the temporary directory (gateway log, audit db)."),
    tools: str = typer.Option(
        "mcp",
        "--tools",
        help="mcp (through the gateway's /mcp/crm, the sample MCP server: held/refused at the call) "
        "or local (tools run here; the gateway judges the model's proposals).",
    ),
    gateway_command: str = typer.Option(
        None,
        "--gateway-command",
        hidden=True,
        help="Command serving the local gateway ({port}, {python} filled in).",
    ),
) -> None:
    """Start a local gateway, run the support scenario, print what happened."""
    from orchestrator.demo import run_demo

    if approval_mode not in ("hold", "defer"):
        raise typer.BadParameter("--approval-mode must be hold or defer")
    if tools not in ("local", "mcp"):
        raise typer.BadParameter("--tools must be local or mcp")
    code = _run(
        run_demo(
            base_url=base_url,
            interactive=interactive,
            approval_mode=approval_mode,
            model=model,
            deny=deny,
            keep=keep,
            gateway_command=gateway_command,
            config_path=config,
            tools=tools,
        )
    )
    raise typer.Exit(int(code))


@app.command()
def run(
    scenario: str = typer.Option("support", help="Scenario to run."),
    run_id: str = typer.Option(None, "--run-id", help="Run id (default: generated)."),
    parent_run_id: str = typer.Option(None, "--parent-run-id", help="Parent run (sent as X-Parent-Run-Id)."),
    base_url: str = BASE_URL,
    model: str = MODEL,
    config: Path = CONFIG,
    db: str = DB,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Run a scenario against a gateway (keys from the config or environment)."""

    cfg = load_config(config, base_url=base_url, model=model, db_path=db)
    _drive(cfg, as_json, lambda orch: orch.start(scenario, run_id=run_id, parent_run_id=parent_run_id))


@app.command()
def resume(
    run_id: str = typer.Argument(..., help="The run to continue."),
    base_url: str = BASE_URL,
    model: str = MODEL,
    config: Path = CONFIG,
    db: str = DB,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Continue a run from its checkpoint; completed tool calls are not executed again."""

    cfg = load_config(config, base_url=base_url, model=model, db_path=db)
    _drive(cfg, as_json, lambda orch: orch.resume(run_id))


@app.command()
def report(
    run_id: str = typer.Argument(..., help="The run to report."),
    db: str = DB,
    config: Path = CONFIG,
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Print a run's report from the checkpoint database."""
    from orchestrator.report import load_report
    from orchestrator.store import CheckpointStore

    cfg = load_config(config, db_path=db)

    async def go() -> None:
        store = await CheckpointStore.open(cfg.db_path)
        try:
            _print(Console(), await load_report(store, run_id), as_json)
        finally:
            await store.close()

    _run(go())


def _drive(
    cfg: OrchestratorConfig, as_json: bool, action: Callable[[Orchestrator], Awaitable[RunReport]]
) -> None:
    """Run ``action`` on an orchestrator, print its report, exit 0 only if the run completed."""
    from orchestrator.service import Orchestrator

    console = Console()

    async def go() -> int:
        async with Orchestrator(cfg, listener=None if as_json else LiveListener(console)) as orch:
            report = await action(orch)
        _print(console, report, as_json)
        return 0 if report.status == "completed" else 1

    raise typer.Exit(int(_run(go())))


def _print(console: Console, rep: RunReport, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(orjson.dumps(rep.to_dict(), option=orjson.OPT_INDENT_2, default=str).decode() + "\n")
    else:
        print_report(console, rep)


@app.command()
def load(
    runs: int = typer.Option(100, "--runs", help="Runs to complete (ignored with --duration)."),
    concurrency: int = typer.Option(LOAD_CONCURRENCY, "--concurrency", help="Runs in flight at once."),
    duration: float = typer.Option(None, "--duration", help="Keep starting runs for this many seconds."),
    warmup: int = typer.Option(0, "--warmup", help="Runs before measuring (not counted)."),
    processes: int = typer.Option(
        1, "--processes", help="Client processes sharing the runs and concurrency."
    ),
    approval_mode: str = typer.Option("defer", "--approval-mode", help="Local gateway's approval mode."),
    base_url: str = BASE_URL,
    model: str = MODEL,
    config: Path = CONFIG,
    db: str = DB,
    gateway_command: str = typer.Option(None, "--gateway-command", hidden=True),
) -> None:
    """Drive many concurrent support runs through one gateway and report throughput and latency."""
    from orchestrator.load import run_load
    from orchestrator.local_gateway import LocalGateway

    logging.getLogger("orchestrator").setLevel(logging.ERROR)
    console = Console()

    async def go() -> dict[str, object]:
        workdir = Path(tempfile.mkdtemp(prefix="wardgate-load-"))
        gateway = None
        try:
            dbp = db or str(workdir / "orchestrator.db")
            if base_url:
                cfg = load_config(config, base_url=base_url, model=model, db_path=dbp)
            else:
                console.print("starting a local gateway (one worker, embedded defaults, every guard on)…")
                gateway = await LocalGateway(
                    workdir, approval_mode=approval_mode, command=gateway_command, load=True
                ).start()
                cfg = load_config(
                    config,
                    base_url=gateway.base_url,
                    admin_key=gateway.keys.admin,
                    model=model,
                    db_path=dbp,
                    agents={a: AgentConfig(key=k) for a, k in gateway.keys.agents.items()},
                )
            cfg = cfg.model_copy(update={"max_concurrency": 4, "approval_poll_s": 0.05})
            return await run_load(
                cfg,
                runs=runs,
                concurrency=concurrency,
                duration_s=duration,
                warmup_runs=warmup,
                processes=processes,
            )
        finally:
            if gateway is not None:
                gateway.stop()
            shutil.rmtree(workdir, ignore_errors=True)

    result = _run(go())
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    app()
