"""Retention prunes old events and leaves the rest verifiable; anchors cannot be forged."""

from __future__ import annotations

import time

from audit_helpers import finish, make_call, tamper

from gateway.audit.export import jsonl
from gateway.audit.jsonl_source import JsonlSource
from gateway.audit.stage import AuditStage
from gateway.audit.store.base import Filters
from gateway.audit.verify import verify

DAY = 86400.0


async def _pruned(make_service):
    """An old, closed chain and a live one with old events then newer ones; pruned in between."""
    t = time.time()
    old = await make_service(retention_days=1)
    for _ in range(3):
        await finish(AuditStage(old), make_call(started=t - 10))
    await old.close()
    live = await make_service(retention_days=1)
    stage = AuditStage(live)
    for _ in range(5):
        await finish(stage, make_call(started=t - 10))
    for _ in range(5):
        await finish(stage, make_call(started=t + 1000, team="team-new"))
    deleted = await live.prune(now=t + 500 + DAY)  # cutoff = t + 500
    return old, live, deleted


async def test_pruning_deletes_old_events_and_the_rest_still_verifies(make_service):
    old, live, deleted = await _pruned(make_service)
    assert deleted == 5 + 6  # the old chain (open, 3 calls, close) + the live chain's open and 5 old calls
    remaining = await live.store.query(Filters(), limit=100)
    assert {ev["kind"] for ev in remaining} == {"call", "retention"}
    assert {ev["principal"]["team"] for ev in remaining if ev["kind"] == "call"} == {"team-new"}
    anchors = await live.store.anchors()
    assert anchors[live.shard].seq == 7 and anchors[old.shard].seq == 6
    report = await verify(live.store)
    assert report.ok, report.all_breaks()
    assert await live.prune(now=time.time() + 500 + DAY) == 0  # nothing more to prune yet


async def test_deletion_after_pruning_is_still_caught(make_service):
    _, live, _ = await _pruned(make_service)
    await tamper(live, "DELETE FROM audit_events WHERE shard = $1 AND seq = 9", live.shard)
    first = (await verify(live.store)).first_break()
    assert first.seq == 10 and first.problem.startswith("deleted")


async def test_a_forged_anchor_hiding_deleted_events_is_caught(make_service):
    _, live, _ = await _pruned(make_service)
    row = [
        ev
        for ev in await live.store.query(Filters(), limit=100)
        if ev["seq"] == 8 and ev["shard"] == live.shard
    ]
    await tamper(live, "DELETE FROM audit_events WHERE shard = $1 AND seq = 7", live.shard)
    await tamper(
        live,
        "UPDATE audit_anchors SET seq = 8, prev_hash = $2 WHERE shard = $1",
        live.shard,
        row[0]["prev_hash"],
    )
    report = await verify(live.store)
    assert not report.ok
    assert any("unattested anchor" in b.problem and b.shard == live.shard for b in report.all_breaks()), (
        report.all_breaks()
    )


async def test_an_unfiltered_export_verifies_offline_after_pruning(make_service, tmp_path):
    _, live, _ = await _pruned(make_service)
    await finish(AuditStage(live), make_call())
    path = tmp_path / "export.jsonl"
    with path.open("wb") as fh:
        async for chunk in jsonl(live.store, Filters()):
            fh.write(chunk)
    report = await verify(JsonlSource(path.read_bytes().splitlines()))
    assert report.ok, report.all_breaks()
    lines = path.read_bytes().splitlines()
    lines[3] = lines[3].replace(b"team-new", b"team-old")
    assert not (await verify(JsonlSource(lines))).ok
