"""``wardgate audit anchor`` and ``wardgate audit keygen``: sign heads, make the key pair.

``anchor`` reads every chain's head from the store and writes one signed record to the
destination (``--to`` or ``audit.anchor_to``), so an operator (or cron) can anchor without a
gateway running. ``keygen`` writes a new Ed25519 private key (mode 0600) and prints the
public key an auditor needs.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console

from gateway.audit.anchors import AnchorError, anchor_record, write_anchor
from gateway.audit.cli_target import store_settings
from gateway.audit.signing import SigningKeyError, load_private_key, private_pem, public_hex


async def _anchor(
    to: str | None,
    key_file: Path | None,
    config: Path | None,
    sqlite: Path | None,
    dsn: str | None,
    schema: str | None,
) -> dict[str, object]:
    backend = "sqlite" if sqlite is not None else ("postgres" if dsn is not None else None)
    settings, store = store_settings(config, backend, sqlite, dsn, schema)
    dest = to or settings.anchor_to
    if dest is None:
        raise typer.BadParameter("no destination: pass --to or set audit.anchor_to")
    key = load_private_key(key_file or settings.signing_key_file, settings.signing_key_env)
    if key is None:
        raise typer.BadParameter(f"no signing key: pass --key-file or set ${settings.signing_key_env}")
    await store.open()
    try:
        heads = {c.shard: c.head for c in await store.chains()}
    finally:
        await store.close()
    record = anchor_record(key, heads, "cli")
    await write_anchor(dest, record, settings.anchor_s3)
    return record


def anchor_cmd(
    to: str = typer.Option(
        None, "--to", help="File, directory, http(s) URL or s3://bucket/prefix (default: audit.anchor_to)."
    ),
    key_file: Path = typer.Option(None, "--key-file", help="Ed25519 private key (default: audit settings)."),
    config: Path = typer.Option(None, "--config", help="wardgate.yaml (default: WARDGATE_CONFIG / env)."),
    sqlite: Path = typer.Option(None, help="Override the SQLite file."),
    dsn: str = typer.Option(None, help="Override the PostgreSQL DSN."),
    schema: str = typer.Option(None, help="Override the PostgreSQL schema."),
) -> None:
    """Sign every chain's head and append it to an anchor destination outside the store."""
    try:
        record = asyncio.run(_anchor(to, key_file, config, sqlite, dsn, schema))
    except (AnchorError, SigningKeyError, OSError) as exc:
        Console(stderr=True).print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    heads = record["heads"]
    count = len(heads) if isinstance(heads, dict) else 0
    Console().print(f"anchored {count} chain(s) at {record['time']}")


def keygen_cmd(
    out: Path = typer.Option(..., "--out", help="Where to write the private key (PEM, mode 0600)."),
) -> None:
    """Make an Ed25519 key pair for audit anchors; prints the public key (hex) for auditors."""
    key = Ed25519PrivateKey.generate()
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private_pem(key))
    typer.echo(public_hex(key))
