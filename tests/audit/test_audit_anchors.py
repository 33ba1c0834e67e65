"""Signed anchors outside the database: what an attacker with database write access cannot hide.

Each tampering below verifies clean (or only "unwitnessed") from the database alone, where
noted, and is caught once ``verify`` holds the chains to the heads signed into an anchor
destination the database never sees. On SQLite and PostgreSQL; destinations: a file, a
directory and a webhook (a real HTTP server).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from audit_helpers import tamper
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_audit_chain_registry import _INSERT, _SET_HEAD, _forge, _last, _problems
from typer.testing import CliRunner

from gateway.audit.anchors import anchor_record, read_anchors, write_anchor
from gateway.audit.chain import Head, ShardChain
from gateway.audit.cli import app as audit_cli
from gateway.audit.signing import private_pem, public_hex

_OLD = time.time() - 3600  # forged events that claim to predate the anchor


@pytest.fixture
def key(tmp_path) -> tuple[Path, Ed25519PrivateKey]:
    k = Ed25519PrivateKey.generate()
    path = tmp_path / "anchor-key.pem"
    path.write_bytes(private_pem(k))
    return path, k


async def _anchored(make_service, tmp_path, key, n: int = 12):
    dest = tmp_path / "anchors.jsonl"
    service = await make_service(signing_key_file=key[0], anchor_to=str(dest), anchor_interval_s=3600)
    for i in range(n):
        await service.record("admin", {"n": i})
    await service.checkpoint()
    await service.record("admin", {"n": "after checkpoint"})
    await service.anchor()
    return service, dest


async def _verify(service, dest, key, **kw):
    from gateway.audit.verify import verify

    return await verify(service.store, anchors=read_anchors(str(dest)), public_key=key[1].public_key(), **kw)


async def _rewrite_from(service, shard: str, seq: int, old: str, new: str) -> None:
    """Edit the event at ``seq`` and re-seal everything after it: every hash recomputed."""
    rows = [r async for r in service.store.iter_chain(shard)]
    import orjson

    events = [orjson.loads(r.body) for r in rows if r.seq >= seq]
    events = [orjson.loads(orjson.dumps(e).replace(old.encode(), new.encode())) for e in events]
    assert any(new in orjson.dumps(e).decode() for e in events)
    base = next(r for r in rows if r.seq == seq - 1)
    sealed = ShardChain(shard, Head(base.seq, base.hash)).seal(events)
    await tamper(service, "DELETE FROM audit_events WHERE shard = $1 AND seq >= $2", shard, seq)
    for row in sealed.rows:
        await tamper(service, _INSERT, *row)
    await tamper(service, _SET_HEAD, shard, sealed.head.seq, sealed.head.hash)


async def test_a_clean_log_verifies_against_its_anchor_and_is_witnessed_up_to_it(make_service, tmp_path, key):
    service, dest = await _anchored(make_service, tmp_path, key)
    [record] = read_anchors(str(dest))
    assert record["heads"][service.shard]["seq"] == 15 and record["key"] == public_hex(key[1])
    report = await _verify(service, dest, key)
    assert report.ok, report.all_breaks()
    mine = next(s for s in report.shards if s.shard == service.shard)
    assert mine.anchored_to == 15 and mine.unwitnessed_from is None
    await service.record("admin", {"n": "after the anchor"})
    mine = next(s for s in (await _verify(service, dest, key)).shards if s.shard == service.shard)
    assert mine.unwitnessed_from == 16  # after the last anchor: only as good as the database


async def test_a_truncated_tail_with_its_head_row_moved_is_caught_only_with_anchors(
    make_service, tmp_path, key
):
    service, dest = await _anchored(make_service, tmp_path, key)
    from gateway.audit.verify import verify

    await tamper(service, "DELETE FROM audit_events WHERE shard = $1 AND seq >= 10", service.shard)
    last = await _last(service, service.shard)
    await tamper(service, _SET_HEAD, service.shard, last.seq, last.hash)
    assert (await verify(service.store)).ok  # the database alone cannot tell
    problems = _problems(await _verify(service, dest, key), service.shard)
    assert any(p.startswith("deleted: seq 15 was signed") for p in problems), problems


async def test_a_rewrite_with_recomputed_hashes_is_caught_by_anchors_and_signed_checkpoints(
    make_service, tmp_path, key
):
    service, dest = await _anchored(make_service, tmp_path, key)
    from gateway.audit.verify import verify

    await _rewrite_from(service, service.shard, 14, '"n":"after checkpoint"', '"n":"rewritten"')
    assert (await verify(service.store)).ok  # after the last checkpoint: nothing in the database refutes it
    problems = _problems(await _verify(service, dest, key), service.shard)
    assert any(p.startswith("rewritten: seq 15") for p in problems), problems
    # Rewriting before the signed checkpoint: the checkpoint's signed head no longer matches,
    # which the public key alone catches (no anchor needed).
    await _rewrite_from(service, service.shard, 3, '"n":1', '"n":100')
    report = await verify(service.store, public_key=key[1].public_key())
    assert any(
        "witnessed another hash" in p or "forged checkpoint" in p for p in _problems(report, service.shard)
    )


async def test_a_deleted_chain_and_a_forged_genesis_chain_are_caught_with_anchors(
    make_service, tmp_path, key
):
    service, dest = await _anchored(make_service, tmp_path, key)
    other = await make_service()
    await other.record("admin", {"n": 1})
    await service.anchor()
    from gateway.audit.verify import verify

    await tamper(service, "DELETE FROM audit_events WHERE shard = $1", other.shard)
    await tamper(service, "DELETE FROM audit_heads WHERE shard = $1", other.shard)
    problems = _problems(await _verify(service, dest, key), other.shard)
    assert any(p.startswith("deleted: seq 2 was signed") for p in problems), problems
    # A forged chain from genesis, registry protocol and all, dated before the anchors.
    chain = ShardChain("forged.genesis")
    from gateway.audit.events import base_event

    sealed = chain.seal([base_event(k, ts=_OLD) | {"data": {}} for k in ("chain_open", "admin", "admin")])
    for row in sealed.rows:
        await tamper(service, _INSERT, *row)
    await tamper(
        service,
        "INSERT INTO audit_heads (shard, seq, hash, ts) VALUES ($1, $2, $3, $4)",
        "forged.genesis",
        sealed.head.seq,
        sealed.head.hash,
        _OLD,
    )
    alone = await verify(service.store)
    assert not any(b.shard == "forged.genesis" for b in alone.all_breaks())  # the database alone: unwitnessed
    problems = _problems(await _verify(service, dest, key), "forged.genesis")
    assert any(p.startswith("unanchored chain") for p in problems), problems


async def test_an_anchor_signed_by_another_key_is_refused(make_service, tmp_path, key):
    service, dest = await _anchored(make_service, tmp_path, key)
    other = Ed25519PrivateKey.generate()
    await write_anchor(str(dest), anchor_record(other, {service.shard: Head(99, "f" * 64)}, "attacker"))
    report = await _verify(service, dest, key)
    assert any("not validly signed" in b.problem for b in report.all_breaks())
    assert not any("seq 99" in b.problem for b in report.all_breaks())  # its claims are not believed


async def test_forged_events_after_close_and_past_head_are_caught_with_anchors(make_service, tmp_path, key):
    service, dest = await _anchored(make_service, tmp_path, key)
    await _forge(service, service.shard, move_head=True)
    # Past the head row: the database alone says "unwitnessed"; the anchor bounds what is proven.
    report = await _verify(service, dest, key)
    mine = next(s for s in report.shards if s.shard == service.shard)
    assert mine.anchored_to == 15 and mine.unwitnessed_from == 16


async def test_the_periodic_anchor_writes_to_a_directory_and_a_webhook(make_service, tmp_path, key):
    received: list[bytes] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["content-length"])))
            self.send_response(204)
            self.end_headers()

        def do_GET(self) -> None:
            body = b"".join(received)
            self.send_response(200)
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/anchors"
    try:
        directory = tmp_path / "other-volume" / "anchors/"
        a = await make_service(
            signing_key_file=key[0], anchor_to=str(directory) + "/", anchor_interval_s=0.05
        )
        b = await make_service(signing_key_file=key[0], anchor_to=url, anchor_interval_s=0.05)
        await a.record("admin", {"n": 1})

        def listed(dest: str) -> bool:  # b may start after a's first anchors (a loaded machine)
            return any(b.shard in r["heads"] for r in read_anchors(dest))

        for _ in range(400):
            if (
                len(list(directory.glob("anchor-*.json"))) >= 2
                and len(received) >= 2
                and listed(str(directory))
            ):
                break
            await asyncio.sleep(0.02)
        for dest in (str(directory), url):
            records = await asyncio.to_thread(read_anchors, dest)
            assert len(records) >= 2
            report = await _verify(a, dest, key)
            assert report.ok, report.all_breaks()
            assert {a.shard, b.shard} <= {s.shard for s in report.shards if s.anchored_to}
    finally:
        server.shutdown()


async def test_cli_keygen_anchor_and_verify_with_anchors(make_service, tmp_path, monkeypatch):
    monkeypatch.setenv("WARDGATE_CONFIG", os.devnull)  # an empty config: the flags name the store
    keyfile = tmp_path / "k.pem"
    made = await asyncio.to_thread(CliRunner().invoke, audit_cli, ["keygen", "--out", str(keyfile)])
    assert made.exit_code == 0, made.output
    public = made.output.strip()
    assert len(public) == 64 and "PRIVATE" not in made.output
    service = await make_service()
    await service.record("admin", {"n": 1})
    store = service.store
    where = (
        ["--sqlite", str(store.path)]
        if store.name == "sqlite"
        else ["--dsn", store.dsn, "--schema", store.schema]
    )
    dest = tmp_path / "anchors"
    dest.mkdir()
    run = CliRunner().invoke
    anchored = await asyncio.to_thread(
        run, audit_cli, ["anchor", "--to", str(dest), "--key-file", str(keyfile), *where]
    )
    assert anchored.exit_code == 0 and "anchored" in anchored.output, anchored.output
    backend = ["--backend", store.name, *where]
    args = ["verify", *backend, "--anchors", str(dest), "--public-key", public]
    ok = await asyncio.to_thread(run, audit_cli, args)
    assert ok.exit_code == 0 and "held to signed anchors" in ok.output, ok.output
    await tamper(service, "DELETE FROM audit_events WHERE shard = $1 AND seq = 2", service.shard)
    await tamper(service, "UPDATE audit_heads SET seq = 1 WHERE shard = $1", service.shard)
    last = await _last(service, service.shard)
    await tamper(service, _SET_HEAD, service.shard, last.seq, last.hash)
    broken = await asyncio.to_thread(run, audit_cli, args)
    assert broken.exit_code == 1 and "signed" in broken.output, broken.output


def test_the_signing_key_variable_passes_the_strict_environment_check():
    from gateway.settings import Settings
    from gateway.strict import unknown_env

    assert unknown_env({"WARDGATE_AUDIT_SIGNING_KEY": "00" * 32}, Settings) == []


async def test_the_signing_key_can_come_from_the_environment(make_service, tmp_path, monkeypatch):
    k = Ed25519PrivateKey.generate()
    monkeypatch.setenv("WARDGATE_AUDIT_SIGNING_KEY", private_pem(k).decode())
    dest = tmp_path / "env-anchors.jsonl"
    service = await make_service(anchor_to=str(dest), anchor_interval_s=3600)
    await service.record("admin", {"n": 1})
    record = await service.anchor()
    assert record["key"] == public_hex(k)
    monkeypatch.delenv("WARDGATE_AUDIT_SIGNING_KEY")
    with pytest.raises(ValueError, match="signing key"):
        await make_service(anchor_to=str(dest))  # anchoring without a key refuses the start


async def test_later_anchors_list_only_the_chains_that_moved_and_all_still_verify(
    make_service, tmp_path, key
):
    old = await make_service()
    await old.record("admin", {"n": 1})
    await old.close()
    await tamper(old, "UPDATE audit_heads SET ts = $1 WHERE shard = $2", _OLD, old.shard)  # stopped long ago
    service, dest = await _anchored(make_service, tmp_path, key)
    await service.record("admin", {"n": "more"})
    await service.anchor()
    first, second = read_anchors(str(dest))
    assert old.shard in first["heads"] and old.shard not in second["heads"]
    assert second["heads"][service.shard]["seq"] == 16
    report = await _verify(service, dest, key)
    assert report.ok, report.all_breaks()
    assert next(s for s in report.shards if s.shard == old.shard).anchored_to == 3
    await tamper(service, "DELETE FROM audit_events WHERE shard = $1 AND seq = 3", old.shard)
    problems = _problems(await _verify(service, dest, key), old.shard)
    assert any("signed in the anchor" in p for p in problems), problems
