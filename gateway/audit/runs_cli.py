"""``wardgate runs show RUN_ID``: an agent run as a tree, one branch per call.

Each call shows model, decision, status, tokens, cost and latency; under it, the guard
decisions with their reasons, the tool calls the model asked for, the approval and any error,
which is usually enough to see why the agent did what it did.
"""

from __future__ import annotations

import sys
from typing import Any
from urllib.parse import quote

import orjson
import typer
from rich.console import Console
from rich.tree import Tree

from gateway.admin.client import AdminClient, ClientError

app = typer.Typer(help="Agent runs: the timeline of every call of a run.", no_args_is_help=True)

_STYLE = {"deny": "red", "error": "magenta", "pending": "yellow", "allow": "green"}


@app.callback()
def _runs() -> None:
    """Agent runs."""


def _step_label(s: dict[str, Any]) -> str:
    decision = s.get("decision") or s.get("kind", "")
    style = _STYLE.get(decision, "cyan")
    usage, cost = s.get("usage") or {}, s.get("cost") or {}
    model = (s.get("model") or {}).get("requested") or ""
    parts = [
        str(s.get("time", ""))[11:23],
        f"[bold]{s.get('kind')}[/bold]",
        model,
        f"[{style}]{decision}[/{style}]",
    ]
    if s.get("status") is not None:
        parts.append(f"HTTP {s['status']}")
    if usage:
        parts.append(f"{usage.get('input_tokens', 0)}→{usage.get('output_tokens', 0)} tok")
    if cost.get("settled_usd") is not None:
        parts.append(f"${cost['settled_usd']:.6f}")
    if (s.get("latency_ms") or {}).get("total") is not None:
        parts.append(f"{s['latency_ms']['total']:.1f} ms")
    retries = (s.get("upstream") or {}).get("retries")
    if retries:
        parts.append(f"{retries} retries")
    return "  ".join(p for p in parts if p)


def render(doc: dict[str, Any]) -> Tree:
    sm = doc["summary"]
    tree = Tree(
        f"[bold]run {doc['run_id']}[/bold]  agents: {', '.join(doc['agent_ids']) or '-'}  "
        f"calls: {sm['calls']}  tokens: {sm['input_tokens']}→{sm['output_tokens']}  "
        f"cost: ${sm['cost_usd']:.6f}  denied: {sm['denied']}  errors: {sm['errors']}"
    )
    for s in doc["steps"]:
        node = tree.add(_step_label(s))
        for d in s.get("decisions") or ():
            reasons = "; ".join(d.get("reasons") or ())
            rev = f" rev {d['revision']}" if d.get("revision") else ""
            node.add(
                f"{d['stage']}/{d['phase']}: [{_STYLE.get(d['outcome'], 'cyan')}]{d['outcome']}[/]"
                f"{rev}{' — ' + reasons if reasons else ''}"
            )
        for tc in s.get("tool_calls") or ():
            node.add(f"tool call requested: [bold]{tc.get('name')}[/bold] ({tc.get('id')})")
        if s.get("approval"):
            a = s["approval"]
            node.add(f"approval {a.get('id', '')}: {a.get('status', '')} by {a.get('reviewer') or '-'}")
        if s.get("error"):
            node.add(f"[magenta]error {s['error'].get('code')} ({s['error'].get('status')})[/magenta]")
        if s.get("kind") != "call" and s.get("data"):
            node.add(orjson.dumps(s["data"]).decode()[:200])
    if doc.get("next_cursor"):
        tree.add(f"… more: --cursor {doc['next_cursor']}")
    return tree


@app.command()
def show(
    run_id: str = typer.Argument(..., help="The run id (X-Run-Id)."),
    cursor: str = typer.Option(None, help="Continue a long run."),
    as_json: bool = typer.Option(False, "--json"),
    url: str = typer.Option(None, "--url", envvar="WARDGATE_URL"),
    admin_key: str = typer.Option(None, "--admin-key", envvar="WARDGATE_ADMIN_KEY"),
) -> None:
    """Every call of the run in order, with decisions, tool calls, approvals, tokens, cost and latency."""
    try:
        doc = AdminClient(url, admin_key).get(f"/admin/runs/{quote(run_id, safe='')}", {"cursor": cursor})
    except ClientError as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    if as_json:
        sys.stdout.write(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    Console().print(render(doc))
