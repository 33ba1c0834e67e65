"""``audit verify`` passes on a clean log and names the first broken link of a tampered one."""

from __future__ import annotations

import asyncio
import os

import pytest
from audit_helpers import finish, make_call, tamper
from typer.testing import CliRunner

from gateway.audit.cli import app as audit_cli
from gateway.audit.stage import AuditStage
from gateway.audit.store.base import Filters
from gateway.audit.verify import verify


async def _filled(make_service, n: int = 12):
    service = await make_service()
    stage = AuditStage(service)
    for i in range(n):
        await finish(stage, make_call(run=f"run-{i % 3}", outcome="deny" if i % 4 == 0 else "allow"))
    await service.checkpoint()
    return service


async def test_verify_passes_on_a_clean_log(make_service):
    service = await _filled(make_service)
    report = await verify(service.store)
    assert report.ok, report.all_breaks()
    assert report.events == 14  # chain_open + 12 calls + checkpoint


async def test_verify_catches_an_edited_event_body(make_service):
    service = await _filled(make_service)
    await tamper(
        service,
        "UPDATE audit_events SET body = replace(body, '\"team-a\"', '\"team-z\"') "
        "WHERE shard = $1 AND seq = 5",
        service.shard,
    )
    report = await verify(service.store)
    first = report.first_break()
    assert not report.ok and first.seq == 5 and first.problem.startswith("edited")
    assert first.id is not None


async def test_verify_catches_an_edited_query_column(make_service):
    service = await _filled(make_service)
    await tamper(
        service, "UPDATE audit_events SET decision = 'allow' WHERE shard = $1 AND seq = 2", service.shard
    )
    first = (await verify(service.store)).first_break()
    assert first.seq == 2 and "column decision" in first.problem


async def test_verify_catches_a_deleted_event(make_service):
    service = await _filled(make_service)
    await tamper(service, "DELETE FROM audit_events WHERE shard = $1 AND seq = 7", service.shard)
    first = (await verify(service.store)).first_break()
    assert first.seq == 8 and first.problem.startswith("deleted")


async def test_verify_catches_a_reordered_pair(make_service):
    service = await _filled(make_service)
    await tamper(
        service, "UPDATE audit_events SET seq = -seq WHERE shard = $1 AND seq IN (4, 5)", service.shard
    )
    await tamper(
        service, "UPDATE audit_events SET seq = 9 + seq WHERE shard = $1 AND seq IN (-4, -5)", service.shard
    )  # -4 -> 5, -5 -> 4: the two events swap places
    first = (await verify(service.store)).first_break()
    assert first.seq == 4 and first.problem.startswith("reordered")


async def test_verify_catches_a_truncated_tail_through_the_head(make_service):
    service = await _filled(make_service)
    await tamper(service, "DELETE FROM audit_events WHERE shard = $1 AND seq >= 13", service.shard)
    first = (await verify(service.store)).first_break()
    assert first.problem.startswith("deleted") and "head is seq 14" in first.problem


async def test_verify_catches_a_whole_deleted_chain_through_another_chains_witness(make_service):
    old = await _filled(make_service, n=3)
    await old.close()
    new = await make_service()  # its chain_open witnesses the old chain's head
    await finish(AuditStage(new), make_call())
    await tamper(new, "DELETE FROM audit_events WHERE shard = $1", old.shard)
    await tamper(new, "DELETE FROM audit_heads WHERE shard = $1", old.shard)
    report = await verify(new.store)
    assert not report.ok
    assert any(b.shard == old.shard and "witnessed" in b.problem for b in report.all_breaks())


async def test_two_processes_write_two_valid_chains_to_one_store(make_service):
    a, b = await make_service(), await make_service()
    for i in range(20):
        await finish(AuditStage(a if i % 2 else b), make_call())
    report = await verify(a.store)
    assert report.ok and {a.shard, b.shard} <= {s.shard for s in report.shards}


@pytest.mark.parametrize("tampered", [False, True])
async def test_cli_verify_exits_non_zero_and_names_the_event_on_a_break(make_service, tampered, monkeypatch):
    service = await _filled(make_service)
    store = service.store
    if tampered:
        await tamper(
            service,
            "UPDATE audit_events SET body = replace(body, 'rev-7', 'rev-8') WHERE shard = $1 AND seq = 3",
            service.shard,
        )
    if store.name == "sqlite":
        args = ["verify", "--backend", "sqlite", "--sqlite", str(store.path)]
    else:
        args = ["verify", "--backend", "postgres", "--dsn", store.dsn, "--schema", store.schema]
    monkeypatch.setenv("WARDGATE_CONFIG", os.devnull)  # an empty config: the flags name the store
    result = await asyncio.to_thread(CliRunner().invoke, audit_cli, args)
    if tampered:
        bad = await store.query(Filters(), limit=100)
        bad_id = next(ev["id"] for ev in bad if ev["seq"] == 3 and ev["shard"] == service.shard)
        assert result.exit_code == 1, result.output
        assert bad_id in result.output and "BROKEN" in result.output
    else:
        assert result.exit_code == 0, result.output
        assert "OK" in result.output
