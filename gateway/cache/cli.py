"""``wardgate cache …``: the response cache's stats and purges over the admin API.

    wardgate cache stats                         store size, hits, misses, hit ratio, saved
    wardgate cache purge --team acme             every answer stored for team acme
    wardgate cache purge --key k1 --model gpt-4o
    wardgate cache purge --global
    wardgate cache purge --all                   everything

Talks HTTP to a running gateway: ``--url`` / ``WARDGATE_URL`` and ``--admin-key`` /
``WARDGATE_ADMIN_KEY`` (``auditor`` is enough for stats; purging needs ``admin``).
"""

from __future__ import annotations

from typing import Any

import orjson
import typer

from gateway.admin.client import admin_call

app = typer.Typer(help="Response cache: stats and purge (admin API).")

_URL = typer.Option("http://127.0.0.1:8080", "--url", envvar="WARDGATE_URL", help="Gateway base URL.")
_KEY = typer.Option(..., "--admin-key", envvar="WARDGATE_ADMIN_KEY", help="Admin API key.")


@app.command()
def stats(url: str = _URL, admin_key: str = _KEY, as_json: bool = typer.Option(False, "--json")) -> None:
    """The store's size and this gateway process's hits, misses, hit ratio and savings."""
    doc = admin_call("GET", url, admin_key, "/admin/cache")
    if as_json:
        typer.echo(orjson.dumps(doc, option=orjson.OPT_INDENT_2).decode())
        return
    store, proc = doc.get("store") or {}, doc.get("process") or {}
    ratio = proc.get("hit_ratio")
    typer.echo(
        f"store: {store.get('store')}  entries: {store.get('entries')}  bytes: {store.get('bytes', '-')}"
    )
    typer.echo(
        f"hits: {proc.get('hit')}  misses: {proc.get('miss')}  stored-without-lookup: {proc.get('store')}  "
        f"bypassed: {proc.get('bypass')}  hit ratio: {'-' if ratio is None else f'{ratio:.1%}'}  "
        f"saved: ${proc.get('saved_usd', 0):,.4f}"
    )


@app.command()
def purge(
    url: str = _URL,
    admin_key: str = _KEY,
    team: str | None = typer.Option(None, "--team", help="Answers stored for this team."),
    key: str | None = typer.Option(None, "--key", help="Answers stored for this key id (scope key)."),
    global_: bool = typer.Option(False, "--global", help="Answers stored with scope global."),
    model: str | None = typer.Option(None, "--model", help="Answers of this (routed) model."),
    everything: bool = typer.Option(False, "--all", help="Every stored answer."),
) -> None:
    """Delete stored answers of a scope and/or a model (audited)."""
    scopes = [s for s in (f"team:{team}" if team else None, f"key:{key}" if key else None) if s]
    if global_:
        scopes.append("global")
    if len(scopes) > 1:
        typer.echo("error: name one of --team, --key, --global", err=True)
        raise typer.Exit(2)
    body: dict[str, Any] = {"scope": scopes[0] if scopes else None, "model": model}
    if everything:
        body["all"] = True
    doc = admin_call("POST", url, admin_key, "/admin/cache/purge", body=body)
    typer.echo(f"deleted {doc.get('deleted')} stored answer(s)")
