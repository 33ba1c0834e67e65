"""``wardgate audit tail|query|export|verify``.

``verify`` opens the store itself (from ``--config`` / ``WARDGATE_CONFIG`` / env settings, or
``--file`` for an exported JSONL), so it works with the gateway down and needs no admin key.
The other commands read through the admin API (``--url``/``--admin-key`` or ``WARDGATE_URL``/
``WARDGATE_ADMIN_KEY``), so they get the same role checks as any auditor.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import time
from pathlib import Path
from typing import Any, cast

import orjson
import typer
from rich.console import Console
from rich.table import Table

from gateway.admin.client import AdminClient, ClientError
from gateway.audit import anchor_cli, roles_cli
from gateway.audit.cli_target import store_settings
from gateway.audit.verify import VerifyReport, verify

app = typer.Typer(
    help="Audit log: query, follow, export and verify the tamper-evident record.", no_args_is_help=True
)

URL = typer.Option(None, "--url", envvar="WARDGATE_URL", help="Gateway base URL.")
KEY = typer.Option(
    None, "--admin-key", envvar="WARDGATE_ADMIN_KEY", help="Admin key (role auditor or admin)."
)


def _client(url: str | None, key: str | None) -> AdminClient:
    try:
        return AdminClient(url, key)
    except ClientError as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _filters(**kw: Any) -> dict[str, Any]:
    names = {"since": "from", "until": "to"}
    return {names.get(k, k): v for k, v in kw.items() if v is not None}


def _table(events: list[dict[str, Any]]) -> Table:
    table = Table(show_lines=False, header_style="bold")
    for col in (
        "time",
        "kind",
        "team",
        "key",
        "agent",
        "run",
        "model",
        "decision",
        "status",
        "tokens",
        "cost $",
        "ms",
    ):
        table.add_column(col, overflow="fold")
    for ev in events:
        p, a, m = ev.get("principal") or {}, ev.get("agent") or {}, ev.get("model") or {}
        usage, cost = ev.get("usage") or {}, ev.get("cost") or {}
        decision = ev.get("decision") or ""
        style = {"deny": "red", "error": "magenta", "pending": "yellow"}.get(decision, "")
        tokens = f"{usage.get('input_tokens', 0)}/{usage.get('output_tokens', 0)}" if usage else ""
        table.add_row(
            str(ev.get("time", ""))[:23],
            ev.get("kind", ""),
            p.get("team") or "",
            p.get("key_id") or "",
            a.get("id") or "",
            a.get("run_id") or "",
            m.get("requested") or "",
            f"[{style}]{decision}[/{style}]" if style else decision,
            str(ev.get("status") or ""),
            tokens,
            f"{cost['settled_usd']:.6f}" if cost.get("settled_usd") is not None else "",
            str((ev.get("latency_ms") or {}).get("total", "")),
        )
    return table


def _get(client: AdminClient, path: str, params: dict[str, Any]) -> Any:
    try:
        return client.get(path, params)
    except ClientError as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None


@app.command("query")
def query_cmd(
    since: str = typer.Option(None, "--from", help="Epoch seconds or ISO 8601."),
    until: str = typer.Option(None, "--to"),
    team: str = typer.Option(None),
    key: str = typer.Option(None, help="Key id."),
    agent: str = typer.Option(None),
    run: str = typer.Option(None),
    decision: str = typer.Option(None, help="allow|deny|pending|error"),
    model: str = typer.Option(None),
    kind: str = typer.Option(None),
    limit: int = typer.Option(50),
    cursor: str = typer.Option(None),
    as_json: bool = typer.Option(False, "--json", help="Print the raw page as JSON."),
    url: str = URL,
    admin_key: str = KEY,
) -> None:
    """One page of events, newest first; prints the cursor of the next page."""
    client = _client(url, admin_key)
    params = _filters(
        since=since,
        until=until,
        team=team,
        key=key,
        agent=agent,
        run=run,
        decision=decision,
        model=model,
        kind=kind,
        limit=limit,
        cursor=cursor,
    )
    page = _get(client, "/admin/audit", params)
    if as_json:
        sys.stdout.write(orjson.dumps(page, option=orjson.OPT_INDENT_2).decode() + "\n")
        return
    console = Console()
    console.print(_table(page["data"]))
    if page.get("next_cursor"):
        console.print(f"next page: --cursor {page['next_cursor']}")


@app.command()
def tail(
    n: int = typer.Option(20, "-n", help="Events to show first."),
    follow: bool = typer.Option(True, "--follow/--no-follow"),
    interval: float = typer.Option(1.0, help="Seconds between polls."),
    lookback: float = typer.Option(300.0, help="Re-read this many seconds back (long calls land late)."),
    team: str = typer.Option(None),
    key: str = typer.Option(None),
    agent: str = typer.Option(None),
    run: str = typer.Option(None),
    decision: str = typer.Option(None),
    url: str = URL,
    admin_key: str = KEY,
) -> None:
    """The latest events, then new ones as they are recorded (Ctrl-C to stop)."""
    client = _client(url, admin_key)
    console = Console()
    filters = _filters(team=team, key=key, agent=agent, run=run, decision=decision)
    first = _get(client, "/admin/audit", {**filters, "limit": n})["data"][::-1]
    seen: collections.OrderedDict[str, None] = collections.OrderedDict((ev["id"], None) for ev in first)
    if first:
        console.print(_table(first))
    last_ts = first[-1]["ts"] if first else time.time()
    while follow:
        time.sleep(interval)
        page = _get(
            client, "/admin/audit", {**filters, "from": last_ts - lookback, "order": "asc", "limit": 1000}
        )
        fresh = [ev for ev in page["data"] if ev["id"] not in seen]
        for ev in fresh:
            seen[ev["id"]] = None
            last_ts = max(last_ts, ev["ts"])
        while len(seen) > 100_000:
            seen.popitem(last=False)
        if fresh:
            console.print(_table(fresh))


@app.command("export")
def export_cmd(
    fmt: str = typer.Option("jsonl", "--format", help="jsonl or csv"),
    output: Path = typer.Option(None, "-o", "--output", help="File to write (default: stdout)."),
    since: str = typer.Option(None, "--from"),
    until: str = typer.Option(None, "--to"),
    team: str = typer.Option(None),
    key: str = typer.Option(None),
    agent: str = typer.Option(None),
    run: str = typer.Option(None),
    decision: str = typer.Option(None),
    model: str = typer.Option(None),
    chain: str = typer.Option(None, "--chain", help="Only this chain (incremental archiving)."),
    since_seq: int = typer.Option(None, "--since-seq", help="With --chain: from this seq on."),
    url: str = URL,
    admin_key: str = KEY,
) -> None:
    """Stream every matching event from one snapshot, chain by chain in commit order (an
    export without content filters verifies on its own with `verify --file`)."""
    client = _client(url, admin_key)
    params = _filters(
        format=fmt,
        chain=chain,
        since_seq=since_seq,
        since=since,
        until=until,
        team=team,
        key=key,
        agent=agent,
        run=run,
        decision=decision,
        model=model,
    )
    out = output.open("wb") if output is not None else sys.stdout.buffer
    try:
        for chunk in client.stream("/admin/audit/export", params):
            out.write(chunk)
    except ClientError as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    finally:
        if output is not None:
            out.close()
        else:
            out.flush()


def _print_report(report: VerifyReport, console: Console) -> None:
    table = Table(header_style="bold")
    for col in ("chain", "events", "seq", "status"):
        table.add_column(col)
    for s in report.shards:
        span = f"{s.first_seq}..{s.last_seq}" if s.first_seq is not None else "-"
        status = "[green]ok[/green]" if not s.breaks else f"[red]{len(s.breaks)} break(s)[/red]"
        table.add_row(s.shard, str(s.events), span, status)
    console.print(table)
    for s in report.unwitnessed:
        console.print(
            f"[yellow]UNWITNESSED[/yellow] chain {s.shard} seq {s.unwitnessed_from}..{s.last_seq}: "
            "no other chain or anchor vouches for these events yet (an anchor does; see --strict)"
        )
    for shard, seg in sorted(report.segments.items()):
        if int(seg.get("from_seq", 1)) > 1:
            console.print(
                f"SEGMENT chain {shard} seq {seg['from_seq']}..{seg['to_seq']} starts after hash "
                f"{seg['prev_hash']}: the archive before it must end with that hash"
            )
    anchored = [s for s in report.shards if s.anchored_to is not None]
    if anchored:
        console.print(f"{len(anchored)} chain(s) held to signed anchors (up to the last anchor).")
    first = report.first_break()
    if first is None:
        console.print(f"[green]OK[/green]: {report.events} events in {len(report.shards)} chain(s) verified.")
        return
    for b in report.all_breaks():
        console.print(f"[red]BROKEN[/red] chain {b.shard} seq {b.seq} event {b.id or '-'}: {b.problem}")
    console.print(f"first broken link: event {first.id or '-'} (chain {first.shard}, seq {first.seq})")


async def _verify_store(
    config: Path | None,
    backend: str | None,
    sqlite: Path | None,
    dsn: str | None,
    schema: str | None,
    **proof: Any,
) -> VerifyReport:
    _, store = store_settings(config, backend, sqlite, dsn, schema)
    await store.open()
    try:
        return await verify(store, inline=True, **proof)  # this process's only work: read here
    finally:
        await store.close()


async def _verify_file(path: Path, **proof: Any) -> VerifyReport:
    from gateway.audit.jsonl_source import JsonlSource

    with path.open("rb") as fh:
        source = JsonlSource(fh)
    return await verify(source, **proof)


def _s3_settings(anchors: str | None, config: Path | None) -> Any:
    """``audit.anchor_s3`` of the config, for an ``s3://`` ``--anchors`` (None otherwise)."""
    if anchors is None or not anchors.startswith("s3://"):
        return None
    from gateway.configcheck import settings_for_command
    from gateway.settings import Settings

    settings = cast(Settings, settings_for_command(config))
    return settings.audit.anchor_s3


def _proof(anchors: str | None, public_key: str | None, config: Path | None = None) -> dict[str, Any]:
    """``verify``'s anchor arguments from the CLI options (exit 2 on a bad key or destination)."""
    if anchors is None and public_key is None:
        return {}
    from gateway.audit.anchors import AnchorError, read_anchors
    from gateway.audit.signing import SigningKeyError, load_public_key

    if public_key is None:
        raise typer.BadParameter("--anchors needs --public-key (what the anchors were signed with)")
    try:
        key = load_public_key(public_key)
        records = read_anchors(anchors, _s3_settings(anchors, config)) if anchors is not None else None
    except (AnchorError, SigningKeyError) as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    return {"public_key": key, "anchors": records}


@app.command("verify")
def verify_cmd(
    config: Path = typer.Option(None, "--config", help="wardgate.yaml (default: WARDGATE_CONFIG / env)."),
    backend: str = typer.Option(None, help="Override audit.backend (sqlite|postgres)."),
    sqlite: Path = typer.Option(None, help="Override the SQLite file."),
    dsn: str = typer.Option(None, help="Override the PostgreSQL DSN."),
    schema: str = typer.Option(None, help="Override the PostgreSQL schema."),
    file: Path = typer.Option(None, "--file", help="Verify an exported/logged JSONL file instead."),
    as_json: bool = typer.Option(False, "--json"),
    strict: bool = typer.Option(
        False, "--strict", help="Also exit 1 when a chain's tail is witnessed by nothing but itself."
    ),
    anchors: str = typer.Option(
        None,
        "--anchors",
        help="Signed anchors: a file, a directory, a URL or s3://bucket/prefix (see `audit anchor`).",
    ),
    public_key: str = typer.Option(
        None, "--public-key", help="Ed25519 public key of the anchors: PEM file, PEM text or hex."
    ),
) -> None:
    """Walk every chain; exit 1 and name the first broken link if anything was edited, deleted or reordered."""
    proof = _proof(anchors, public_key, config)
    if file is not None:
        report = asyncio.run(_verify_file(file, **proof))
    else:
        report = asyncio.run(_verify_store(config, backend, sqlite, dsn, schema, **proof))
    if as_json:
        sys.stdout.write(orjson.dumps(report.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _print_report(report, Console())
    if not report.ok or (strict and report.unwitnessed):
        raise typer.Exit(1)


app.command("anchor")(anchor_cli.anchor_cmd)
app.command("keygen")(anchor_cli.keygen_cmd)
app.command("grant")(roles_cli.grant_cmd)
app.command("prune")(roles_cli.prune_cmd)
