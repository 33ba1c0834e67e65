"""``wardgate approvals list|show|approve|deny``: the reviewer's terminal, over the admin API.

It talks HTTP to a running gateway (``--url`` / ``WARDGATE_URL``, ``--admin-key`` /
``WARDGATE_ADMIN_KEY``) rather than to Redis, so the same checks apply as for any reviewer:
role, group, four-eyes, and the decision lands in the audit log.

Everything an approval shows is untrusted: tool names and arguments come from the model,
reasons from policies quoting them, comments from people. It is printed literally: every
string goes into the table as a ``rich.text.Text`` (never parsed as markup or emoji codes,
so ``[conceal]acct-666[/conceal]`` stays visible and ``[/]`` cannot crash the command), and
control and format characters (ANSI escapes, bidi overrides, zero-width characters, line
separators) are shown as ``\\x1b`` / ``\\u202e`` escapes instead of reaching the terminal.
``show`` prints arguments whole: a destination account padded past a column width must not
be cut off where the reviewer decides.
"""

from __future__ import annotations

import json
import time
import unicodedata
import urllib.parse
from dataclasses import dataclass
from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from gateway.admin.client import AdminClient, ClientError

app = typer.Typer(help="Review the human approval queue.", no_args_is_help=True)

_URL = typer.Option("http://127.0.0.1:8080", "--url", envvar="WARDGATE_URL", help="Gateway base URL.")
_KEY = typer.Option(..., "--admin-key", envvar="WARDGATE_ADMIN_KEY", help="Admin key with role approver.")

#: Unicode categories that change how a terminal shows text rather than showing a glyph:
#: controls (ESC, CR, BEL...), format characters (bidi overrides, zero-width), line and
#: paragraph separators, lone surrogates (which a terminal cannot even encode).
_UNSHOWN = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def safe(value: Any) -> str:
    """``value`` as text a terminal shows literally: unshown characters become escapes."""
    text = value if isinstance(value, str) else str(value)
    if text.isprintable():  # the common case, checked in C: nothing to escape
        return text
    out = []
    for ch in text:
        if ch == " " or unicodedata.category(ch) not in _UNSHOWN:
            out.append(ch)
        else:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
    return "".join(out)


def _text(value: Any, style: str = "") -> Text:
    """A table cell that is never parsed as markup."""
    return Text(safe(value), style=style)


def _err(*parts: str | tuple[str, str]) -> None:
    Console(stderr=True, highlight=False).print(Text.assemble(*parts))


@dataclass(slots=True)
class Client:
    url: str
    key: str

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        try:
            return AdminClient(self.url, self.key).call(method, path, body=body)
        except ClientError as exc:
            if exc.status is None:
                _err((safe(str(exc)), "red"))
                raise typer.Exit(2) from None
            _err((safe(f"HTTP {exc.status} {exc.code}"), "red"), ": ", safe(exc.message))
            raise typer.Exit(1) from None


def _when(ts: Any) -> str:
    return (
        time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts)) if isinstance(ts, int | float) and ts else "-"
    )


def _args(value: Any, limit: int | None = 80) -> str:
    if isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, ensure_ascii=False, indent=None if limit else 2)
    text = safe(text)
    return text if limit is None or len(text) <= limit else text[: limit - 3] + "..."


_STYLE = {"pending": "yellow", "approved": "green", "denied": "red", "expired": "dim", "cancelled": "dim"}


def _console() -> Console:
    # No highlighting either: it would colour parts of untrusted text as if they meant something.
    return Console(highlight=False, emoji=False, markup=False)


@app.command("list")
def list_cmd(
    status: str = typer.Option(None, help="pending | approved | denied | expired | cancelled"),
    agent: str = typer.Option(None),
    run: str = typer.Option(None),
    team: str = typer.Option(None),
    limit: int = typer.Option(50, min=1, max=200),
    cursor: str = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="Print raw JSON."),
    url: str = _URL,
    admin_key: str = _KEY,
) -> None:
    """List approvals, newest first."""
    params = {
        k: v
        for k, v in {
            "status": status,
            "agent": agent,
            "run": run,
            "team": team,
            "limit": limit,
            "cursor": cursor,
        }.items()
        if v is not None
    }
    page = Client(url, admin_key).call("GET", "/admin/approvals?" + urllib.parse.urlencode(params))
    if as_json:
        typer.echo(json.dumps(page, indent=2))  # ensure_ascii: every control character escaped
        return
    table = Table(title="Approvals")
    for col in ("id", "status", "created", "team/key", "agent/run", "tools", "groups", "reasons"):
        table.add_column(col, overflow="fold")
    for a in page.get("data") or []:
        p = a.get("principal") or {}
        s = str(a.get("status"))
        table.add_row(
            _text(a.get("id")),
            _text(s, _STYLE.get(s, "")),
            _text(_when(a.get("created_at"))),
            _text(f"{p.get('team')}/{p.get('key_id')}"),
            _text(f"{a.get('agent_id') or '-'}/{a.get('run_id') or '-'}"),
            _text(", ".join(str(c.get("name") or "?") for c in a.get("tool_calls") or []) or "-"),
            _text(", ".join(map(str, a.get("groups") or [])) or "any"),
            _text("; ".join(map(str, a.get("reasons") or []))),
        )
    console = _console()
    console.print(table)
    if page.get("next_cursor"):
        console.print(Text("more: --cursor " + safe(page["next_cursor"])))


@app.command()
def show(
    approval_id: str, as_json: bool = typer.Option(False, "--json"), url: str = _URL, admin_key: str = _KEY
) -> None:
    """Show one approval with its tool calls and their whole arguments."""
    a = Client(url, admin_key).call("GET", f"/admin/approvals/{urllib.parse.quote(approval_id, safe='')}")
    if as_json:
        typer.echo(json.dumps(a, indent=2))
        return
    _print(a, whole=True)


def _print(a: dict[str, Any], *, whole: bool = False) -> None:
    console = _console()
    info = Table(show_header=False, title=Text("Approval " + safe(a.get("id"))))
    info.add_column("field", style="bold")
    info.add_column("value", overflow="fold")
    p = a.get("principal") or {}
    status = str(a.get("status"))
    rows: list[tuple[str, Text]] = [
        ("status", _text(status, _STYLE.get(status, ""))),
        ("phase / mode", _text(f"{a.get('phase')} / {a.get('mode')}")),
        ("principal", _text(f"key {p.get('key_id')}, team {p.get('team')}, user {p.get('user') or '-'}")),
        ("agent / run", _text(f"{a.get('agent_id') or '-'} / {a.get('run_id') or '-'}")),
        ("model", _text(a.get("model"))),
        # One reason per line: the line breaks are ours, any inside a reason are escaped.
        ("reasons", Text("\n").join(_text(r) for r in a.get("reasons") or [])),
        ("groups", _text(", ".join(map(str, a.get("groups") or [])) or "any approver")),
        ("approvals", _text(f"{len(a.get('votes') or [])} of {a.get('approvals_required')}")),
        ("created / expires", _text(f"{_when(a.get('created_at'))} / {_when(a.get('expires_at'))}")),
        ("decided", _text(f"{_when(a.get('decided_at'))} by {a.get('decided_by') or '-'}")),
        ("comment", _text(a.get("comment") or a.get("outcome_reason") or "-")),
    ]
    if a.get("values"):
        rows.append(("argument values", _text(_VALUES.get(str(a["values"]), a["values"]))))
    for k, v in rows:
        info.add_row(k, v)
    console.print(info)
    calls = a.get("tool_calls") or []
    if calls:
        table = Table(title="Tool calls")
        table.add_column("id")
        table.add_column("tool")
        table.add_column("arguments", overflow="fold")
        for c in calls:
            table.add_row(
                _text(c.get("id") or "-"),
                _text(c.get("name")),
                _text(_args(c.get("arguments"), None if whole else 80)),
            )
        console.print(table)


_VALUES = {
    "real": "real (the caller's redacted values, shown to your group)",
    "placeholders": "placeholders (the real values are shown only to the approval's groups)",
}


@app.command("approve")
def approve_cmd(
    approval_id: str,
    comment: str = typer.Option(None, "--comment", "-m"),
    url: str = _URL,
    admin_key: str = _KEY,
) -> None:
    """Approve a pending approval."""
    path = f"/admin/approvals/{urllib.parse.quote(approval_id, safe='')}/approve"
    _print(Client(url, admin_key).call("POST", path, {"comment": comment}))


@app.command("deny")
def deny_cmd(
    approval_id: str,
    comment: str = typer.Option(None, "--comment", "-m", help="The agent reads this."),
    url: str = _URL,
    admin_key: str = _KEY,
) -> None:
    """Deny a pending approval."""
    path = f"/admin/approvals/{urllib.parse.quote(approval_id, safe='')}/deny"
    _print(Client(url, admin_key).call("POST", path, {"comment": comment}))
