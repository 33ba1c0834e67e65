"""``wardgate spend …``: spend, budgets and limits over the admin API.

    wardgate spend                                   every team: spent, reserved, budget, forecast
    wardgate spend --scope key                       every key
    wardgate spend --scope agent --team acme         agents of a team with recent activity
    wardgate spend --scope team --id acme --json     one scope, raw JSON
    wardgate spend set-budget team acme --day 5 --month none
    wardgate spend set-limits key k1 --rpm 60 --tpm 100000

Talks HTTP to a running gateway: ``--url`` / ``WARDGATE_URL`` and ``--admin-key`` /
``WARDGATE_ADMIN_KEY`` (an admin key; ``auditor`` is enough to read).
"""

from __future__ import annotations

import math
import urllib.parse
from typing import Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from gateway.admin.client import admin_call

app = typer.Typer(help="Spend, budgets and rate limits (admin API).")

_URL = typer.Option("http://127.0.0.1:8080", "--url", envvar="WARDGATE_URL", help="Gateway base URL.")
_KEY = typer.Option(..., "--admin-key", envvar="WARDGATE_ADMIN_KEY", help="Admin API key.")
_TEAM = typer.Option(None, "--team", help="Team of a user/agent/run/model scope.")


def _usd(v: float | None) -> str:
    return "-" if v is None else f"${v:,.4f}"


def render(rows: list[dict[str, Any]], console: Console | None = None) -> None:
    """A table with one line per scope and budget window (windows without budget or spend skipped)."""
    table = Table(title="Wardgate spend")
    for col, justify in (
        ("scope", "left"),
        ("id", "left"),
        ("team", "left"),
        ("window", "left"),
        ("spent", "right"),
        ("reserved", "right"),
        ("budget", "right"),
        ("remaining", "right"),
        ("burn/h", "right"),
        ("forecast", "left"),
    ):
        table.add_column(col, justify=justify)  # type: ignore[arg-type]  # the literals above are rich's justify values
    for row in rows:
        shown = False
        for window, w in row["windows"].items():
            if w["budget_usd"] is None and not w["spent_usd"] and (shown or window != "total"):
                continue
            table.add_row(
                row["scope"],
                row["id"],
                row["team"],
                window,
                _usd(w["spent_usd"]),
                _usd(row["reserved_usd"]),
                _usd(w["budget_usd"]),
                _usd(w["remaining_usd"]),
                _usd(row["burn_rate_usd_per_hour"]),
                w["forecast"],
            )
            shown = True
    (console or Console()).print(table)


@app.callback(invoke_without_command=True)
def spend(
    ctx: typer.Context,
    scope: str = typer.Option("team", "--scope", help="key, team, user, agent, run or model."),
    scope_id: str = typer.Option(None, "--id", help="One scope (default: list all of --scope)."),
    team: str = _TEAM,
    as_json: bool = typer.Option(False, "--json", help="Print the API's JSON instead of a table."),
    url: str = _URL,
    admin_key: str = typer.Option(None, "--admin-key", envvar="WARDGATE_ADMIN_KEY", help="Admin API key."),
) -> None:
    """Show spend per scope: spent, reserved, budget, remaining, burn rate and forecast."""
    if ctx.invoked_subcommand is not None:
        return
    if not admin_key:
        typer.echo("error: an admin key is required (--admin-key or WARDGATE_ADMIN_KEY)", err=True)
        raise typer.Exit(2)
    doc = admin_call("GET", url, admin_key, "/admin/spend", {"scope": scope, "id": scope_id, "team": team})
    if as_json:
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    render(doc["data"] if "data" in doc else [doc])


def _value(raw: str | None, name: str) -> tuple[bool, float | None]:
    """(given, value): ``none``/``null`` means "no limit"."""
    if raw is None:
        return False, None
    if raw.lower() in ("none", "null", "unlimited"):
        return True, None
    try:
        value = float(raw)
    except ValueError as exc:
        raise typer.BadParameter(f"{name} must be a number or 'none'") from exc
    if not math.isfinite(value):  # JSON has no infinity: it would go out as null, i.e. "no limit"
        raise typer.BadParameter(f"{name} must be a finite number or 'none'")
    return True, value


@app.command("set-budget")
def set_budget(
    scope: str = typer.Argument(..., help="key, team, user, agent, run or model."),
    scope_id: str = typer.Argument(...),
    day: str = typer.Option(None, help="USD per UTC day ('none' = no limit)."),
    month: str = typer.Option(None, help="USD per UTC month."),
    total: str = typer.Option(None, help="USD in total."),
    team: str = _TEAM,
    url: str = _URL,
    admin_key: str = _KEY,
) -> None:
    """Set a runtime budget (replaces the scope's budget override; omitted windows use the files)."""
    body = {}
    for name, raw in (("day", day), ("month", month), ("total", total)):
        given, v = _value(raw, name)
        if given:
            body[name] = v
    path = f"/admin/budgets/{urllib.parse.quote(scope)}/{urllib.parse.quote(scope_id, safe='')}"
    render([admin_call("PUT", url, admin_key, path, {"team": team}, body)])


@app.command("set-limits")
def set_limits(
    scope: str = typer.Argument(..., help="key, team, user, agent, run or model."),
    scope_id: str = typer.Argument(...),
    rpm: str = typer.Option(None, help="Requests per minute ('none' = no limit)."),
    tpm: str = typer.Option(None, help="Tokens per minute."),
    run_max_calls: str = typer.Option(None, help="Team scope: calls per run."),
    run_max_identical: str = typer.Option(None, help="Team scope: identical requests per run."),
    run_max_cost: str = typer.Option(None, help="Team scope: USD per run."),
    concurrent: str = typer.Option(None, help="Calls in flight at once (max_concurrent_requests)."),
    team: str = _TEAM,
    url: str = _URL,
    admin_key: str = _KEY,
) -> None:
    """Set runtime rate limits / run guards (replaces the scope's limits override)."""
    names = (
        ("requests_per_minute", rpm),
        ("tokens_per_minute", tpm),
        ("run_max_calls", run_max_calls),
        ("run_max_identical_requests", run_max_identical),
        ("run_max_cost_usd", run_max_cost),
        ("max_concurrent_requests", concurrent),
    )
    body: dict[str, Any] = {}
    for name, raw in names:
        given, v = _value(raw, name)
        if given:  # a fraction where a count is due goes as is: the API names the field in its 400
            body[name] = int(v) if v is not None and not name.endswith("_usd") and v.is_integer() else v
    path = f"/admin/limits/{urllib.parse.quote(scope)}/{urllib.parse.quote(scope_id, safe='')}"
    doc = admin_call("PUT", url, admin_key, path, {"team": team}, body)
    typer.echo(orjson.dumps({"limits": doc["limits"], "override": doc["override"]}).decode())
