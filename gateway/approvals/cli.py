"""``wardgate approvals list|show|approve|deny``: the reviewer's terminal, over the admin API.

It talks HTTP to a running gateway (``--url`` / ``WARDGATE_URL``, ``--admin-key`` /
``WARDGATE_ADMIN_KEY``) rather than to Redis, so the same checks apply as for any reviewer:
role, group, four-eyes, and the decision lands in the audit log.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Review the human approval queue.", no_args_is_help=True)

_URL = typer.Option("http://127.0.0.1:8080", "--url", envvar="WARDGATE_URL", help="Gateway base URL.")
_KEY = typer.Option(..., "--admin-key", envvar="WARDGATE_ADMIN_KEY", help="Admin key with role approver.")


@dataclass(slots=True)
class Client:
    url: str
    key: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url.rstrip("/") + path, data=data, method=method, headers={
            "authorization": f"Bearer {self.key}", "content-type": "application/json", "accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read() or b"null")
        except urllib.error.HTTPError as exc:
            try:
                err = json.loads(exc.read()).get("error") or {}
            except ValueError:
                err = {}
            message = err.get("message") or exc.reason
            Console(stderr=True).print(f"[red]HTTP {exc.code} {err.get('code') or ''}[/red]: {message}")
            raise typer.Exit(1) from exc
        except urllib.error.URLError as exc:
            Console(stderr=True).print(f"[red]cannot reach {self.url}[/red]: {exc.reason}")
            raise typer.Exit(2) from exc


def _when(ts: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if ts else "-"


def _args(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


_STYLE = {"pending": "yellow", "approved": "green", "denied": "red", "expired": "dim", "cancelled": "dim"}


@app.command("list")
def list_cmd(
    status: str = typer.Option(None, help="pending | approved | denied | expired | cancelled"),
    agent: str = typer.Option(None), run: str = typer.Option(None), team: str = typer.Option(None),
    limit: int = typer.Option(50, min=1, max=200), cursor: str = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="Print raw JSON."),
    url: str = _URL, admin_key: str = _KEY,
) -> None:
    """List approvals, newest first."""
    params = {k: v for k, v in {"status": status, "agent": agent, "run": run, "team": team, "limit": limit,
                                "cursor": cursor}.items() if v is not None}
    page = Client(url, admin_key).call("GET", "/admin/approvals?" + urllib.parse.urlencode(params))
    if as_json:
        typer.echo(json.dumps(page, indent=2))
        return
    table = Table(title="Approvals")
    for col in ("id", "status", "created", "team/key", "agent/run", "tools", "groups", "reasons"):
        table.add_column(col, overflow="fold")
    for a in page["data"]:
        p = a.get("principal") or {}
        s = a["status"]
        table.add_row(a["id"], f"[{_STYLE.get(s, '')}]{s}[/]", _when(a["created_at"]),
                      f"{p.get('team')}/{p.get('key_id')}", f"{a.get('agent_id') or '-'}/{a.get('run_id') or '-'}",
                      ", ".join(c.get("name") or "?" for c in a.get("tool_calls") or []) or "-",
                      ", ".join(a.get("groups") or []) or "any", "; ".join(a.get("reasons") or []))
    Console().print(table)
    if page.get("next_cursor"):
        Console().print(f"more: --cursor {page['next_cursor']}")


@app.command()
def show(approval_id: str, as_json: bool = typer.Option(False, "--json"), url: str = _URL,
         admin_key: str = _KEY) -> None:
    """Show one approval with its tool calls and arguments."""
    a = Client(url, admin_key).call("GET", f"/admin/approvals/{approval_id}")
    if as_json:
        typer.echo(json.dumps(a, indent=2))
        return
    _print(a)


def _print(a: dict[str, Any]) -> None:
    console = Console()
    info = Table(show_header=False, title=f"Approval {a['id']}")
    info.add_column("field", style="bold")
    info.add_column("value", overflow="fold")
    p = a.get("principal") or {}
    rows = [
        ("status", f"[{_STYLE.get(a['status'], '')}]{a['status']}[/]"), ("phase / mode", f"{a['phase']} / {a['mode']}"),
        ("principal", f"key {p.get('key_id')}, team {p.get('team')}, user {p.get('user') or '-'}"),
        ("agent / run", f"{a.get('agent_id') or '-'} / {a.get('run_id') or '-'}"), ("model", a.get("model")),
        ("reasons", "\n".join(a.get("reasons") or [])), ("groups", ", ".join(a.get("groups") or []) or "any approver"),
        ("approvals", f"{len(a.get('votes') or [])} of {a.get('approvals_required')}"),
        ("created / expires", f"{_when(a['created_at'])} / {_when(a['expires_at'])}"),
        ("decided", f"{_when(a.get('decided_at'))} by {a.get('decided_by') or '-'}"),
        ("comment", a.get("comment") or a.get("outcome_reason") or "-"),
    ]
    for k, v in rows:
        info.add_row(k, str(v))
    console.print(info)
    calls = a.get("tool_calls") or []
    if calls:
        table = Table(title="Tool calls")
        table.add_column("id")
        table.add_column("tool")
        table.add_column("arguments", overflow="fold")
        for c in calls:
            table.add_row(str(c.get("id") or "-"), str(c.get("name")), _args(c.get("arguments")))
        console.print(table)


@app.command("approve")
def approve_cmd(approval_id: str, comment: str = typer.Option(None, "--comment", "-m"), url: str = _URL,
                admin_key: str = _KEY) -> None:
    """Approve a pending approval."""
    _print(Client(url, admin_key).call("POST", f"/admin/approvals/{approval_id}/approve", {"comment": comment}))


@app.command("deny")
def deny_cmd(approval_id: str, comment: str = typer.Option(None, "--comment", "-m", help="The agent reads this."),
             url: str = _URL, admin_key: str = _KEY) -> None:
    """Deny a pending approval."""
    _print(Client(url, admin_key).call("POST", f"/admin/approvals/{approval_id}/deny", {"comment": comment}))
