"""The tamper matrix, on SQLite and PostgreSQL: every tampering is caught with signed anchors,
and the ones the database itself can refute are caught without them.

One setup per case: an old chain that closed cleanly (witnessed by the next start), then a
live chain with a signed checkpoint and an anchor of every head. The attacker writes the
tables directly (on PostgreSQL as a superuser with the append-only triggers off). Cases the
database alone cannot refute (a consistent rewrite, truncation with the head row moved back,
a deleted newest chain, a forged chain dated before the anchor) are asserted to pass without
anchors, so this file also states what only an anchor proves.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from audit_helpers import tamper
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_audit_anchors import _OLD, _rewrite_from
from test_audit_chain_registry import _INSERT, _SET_HEAD, _forge, _last

from gateway.audit.anchors import read_anchors
from gateway.audit.chain import Head, ShardChain
from gateway.audit.events import base_event
from gateway.audit.signing import private_pem
from gateway.audit.verify import verify


@pytest.fixture
def key(tmp_path) -> tuple[Path, Ed25519PrivateKey]:
    k = Ed25519PrivateKey.generate()
    path = tmp_path / "anchor-key.pem"
    path.write_bytes(private_pem(k))
    return path, k


async def _setup(make_service, tmp_path, key):
    old = await make_service()
    for i in range(3):
        await old.record("admin", {"n": i})
    await old.close()  # open, 3 admin, close: seq 1..5
    dest = tmp_path / "anchors.jsonl"
    live = await make_service(signing_key_file=key[0], anchor_to=str(dest), anchor_interval_s=3600)
    for i in range(12):
        await live.record("admin", {"n": i})
    await live.checkpoint()
    await live.record("admin", {"n": "after checkpoint"})
    await live.anchor()  # the process's first anchor: every chain's head (live at seq 15)
    return old, live, dest


async def _edit(old, live):
    await tamper(
        live,
        "UPDATE audit_events SET body = replace(body, '\"n\":4', '\"n\":44') WHERE shard = $1 AND seq = 6",
        live.shard,
    )


async def _delete_middle(old, live):
    await tamper(live, "DELETE FROM audit_events WHERE shard = $1 AND seq = 7", live.shard)


async def _reorder(old, live):
    await tamper(live, "UPDATE audit_events SET seq = -seq WHERE shard = $1 AND seq IN (4, 5)", live.shard)
    await tamper(
        live, "UPDATE audit_events SET seq = 9 + seq WHERE shard = $1 AND seq IN (-4, -5)", live.shard
    )


async def _insert_forged(old, live):
    """A correctly hashed event slipped in at seq 7 (the rest renumbered one up)."""
    rows = {r.seq: r async for r in live.store.iter_chain(live.shard)}
    await tamper(live, "UPDATE audit_events SET seq = -seq WHERE shard = $1 AND seq >= 7", live.shard)
    await tamper(live, "UPDATE audit_events SET seq = 1 - seq WHERE shard = $1 AND seq < 0", live.shard)
    sealed = ShardChain(live.shard, Head(6, rows[6].hash)).seal(
        [base_event("admin") | {"data": {"forged": 1}}]
    )
    await tamper(live, _INSERT, *sealed.rows[0])
    await tamper(live, _SET_HEAD, live.shard, 16, rows[15].hash)


async def _append_after_close(old, live):
    await _forge(live, old.shard, move_head=True)


async def _append_past_head(old, live):
    await _forge(live, live.shard, move_head=False)


async def _truncate_keep_head(old, live):
    await tamper(live, "DELETE FROM audit_events WHERE shard = $1 AND seq >= 13", live.shard)


async def _truncate_delete_head(old, live):
    await tamper(live, "DELETE FROM audit_events WHERE shard = $1 AND seq >= 13", live.shard)
    await tamper(live, "DELETE FROM audit_heads WHERE shard = $1", live.shard)


async def _truncate_move_head(old, live):
    await tamper(live, "DELETE FROM audit_events WHERE shard = $1 AND seq >= 13", live.shard)
    last = await _last(live, live.shard)
    await tamper(live, _SET_HEAD, live.shard, last.seq, last.hash)


async def _delete_witnessed_chain(old, live):
    await tamper(live, "DELETE FROM audit_events WHERE shard = $1", old.shard)
    await tamper(live, "DELETE FROM audit_heads WHERE shard = $1", old.shard)


async def _delete_newest_chain(old, live):
    await tamper(live, "DELETE FROM audit_events WHERE shard = $1", live.shard)
    await tamper(live, "DELETE FROM audit_heads WHERE shard = $1", live.shard)


async def _rewrite_recomputed(old, live):
    await _rewrite_from(live, live.shard, 14, '"n":"after checkpoint"', '"n":"rewritten"')


async def _forged_genesis(old, live):
    sealed = ShardChain("forged.genesis").seal(
        [base_event(k, ts=_OLD) | {"data": {}} for k in ("chain_open", "admin", "admin")]
    )
    for row in sealed.rows:
        await tamper(live, _INSERT, *row)
    await tamper(
        live,
        "INSERT INTO audit_heads (shard, seq, hash, ts) VALUES ($1, $2, $3, $4)",
        "forged.genesis",
        sealed.head.seq,
        sealed.head.hash,
        _OLD,
    )


#: case -> (tampering, caught by the database alone, what the anchored verify says)
CASES = {
    "edit": (_edit, True, "edited"),
    "delete_middle": (_delete_middle, True, "deleted"),
    "reorder": (_reorder, True, "reordered"),
    "insert_forged": (_insert_forged, True, "reordered"),
    "append_after_close": (_append_after_close, True, "appended after close"),
    "append_past_head": (_append_past_head, True, "appended past head"),
    "truncate_tail_keeping_head_row": (_truncate_keep_head, True, "deleted"),
    "truncate_tail_and_head_row": (_truncate_delete_head, True, "no head row"),
    "truncate_tail_moving_head_row": (_truncate_move_head, False, "deleted: seq 15 was signed"),
    "delete_witnessed_chain": (_delete_witnessed_chain, True, "deleted"),
    "delete_newest_chain": (_delete_newest_chain, False, "deleted: seq 15 was signed"),
    "rewrite_recomputed_hashes": (_rewrite_recomputed, False, "rewritten: seq 15"),
    "forged_genesis_chain": (_forged_genesis, False, "unanchored chain"),
}


@pytest.mark.parametrize("case", sorted(CASES))
async def test_tampering_is_caught(make_service, tmp_path, key, case):
    old, live, dest = await _setup(make_service, tmp_path, key)
    assert (await verify(live.store, anchors=read_anchors(str(dest)), public_key=key[1].public_key())).ok
    tampering, without_anchors, expected = CASES[case]
    await tampering(old, live)

    alone = await verify(live.store)
    if without_anchors:
        assert not alone.ok, f"{case}: the database alone should refute it"
    else:
        assert alone.ok, f"{case}: expected to pass without anchors (only an anchor refutes it)"
    anchored = await verify(live.store, anchors=read_anchors(str(dest)), public_key=key[1].public_key())
    problems = [b.problem for b in anchored.all_breaks()]
    assert not anchored.ok and any(p.startswith(expected) for p in problems), problems
    # Read inline (the CLI's and the admin API's way: SQLite read in this thread): same verdicts.
    here = await verify(live.store, inline=True)
    assert here.to_dict() == alone.to_dict()
    here = await verify(
        live.store, anchors=read_anchors(str(dest)), public_key=key[1].public_key(), inline=True
    )
    assert here.to_dict() == anchored.to_dict()
