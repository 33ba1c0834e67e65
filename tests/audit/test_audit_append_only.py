"""Append-only PostgreSQL: the gateway's role cannot rewrite history, the pruner's can only prune.

Real PostgreSQL, a schema and two login roles of the test's own (dropped after). The owner
(the test's superuser) migrates and grants with ``wardgate audit grant --apply``; the
gateway writes as the writer role, retention runs as the pruner role.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from types import SimpleNamespace

import asyncpg
import pytest
from audit_helpers import PG_DSN, finish, make_call, pg_execute, tamper
from typer.testing import CliRunner

from gateway.audit.cli import app as audit_cli
from gateway.audit.config import AuditSettings
from gateway.audit.service import AuditService
from gateway.audit.stage import AuditStage
from gateway.audit.store.pg_guard import grant_sql
from gateway.audit.store.postgres import SCHEMA_VERSION, MigrationRefused, PostgresStore
from gateway.audit.verify import verify

DAY = 86400.0


def _dsn_as(role: str) -> str:
    user = PG_DSN.split("//", 1)[1].split("@", 1)[0]
    return PG_DSN.replace(f"//{user}@", f"//{role}@", 1)


@pytest.fixture
def roles(pg_schema):
    tag = uuid.uuid4().hex[:10]
    writer, pruner = f"wgtest_w_{tag}", f"wgtest_p_{tag}"
    for role in (writer, pruner):
        pg_execute(f'CREATE ROLE "{role}" LOGIN')
    result = CliRunner().invoke(
        audit_cli,
        ["grant", "--writer", writer, "--pruner", pruner, "--dsn", PG_DSN, "--schema", pg_schema, "--apply"],
    )
    assert result.exit_code == 0, result.output
    yield pg_schema, writer, pruner
    for role in (writer, pruner):
        pg_execute(f'DROP OWNED BY "{role}"')
        pg_execute(f'DROP ROLE IF EXISTS "{role}"')


async def _service(schema: str, role: str | None, **kw) -> AuditService:
    settings = AuditSettings(
        backend="postgres", postgres_dsn=_dsn_as(role) if role else PG_DSN, postgres_schema=schema, **kw
    )
    service = AuditService(settings, PostgresStore(settings.postgres_dsn, schema))
    await service.start()
    return service


async def _as(role: str | None, schema: str, stmt: str, *args) -> str:
    conn = await asyncpg.connect(_dsn_as(role) if role else PG_DSN, server_settings={"search_path": schema})
    try:
        return await conn.execute(stmt, *args)
    finally:
        await conn.close()


def test_grant_prints_the_two_roles_grants_and_never_update_or_delete_for_the_writer():
    result = CliRunner().invoke(audit_cli, ["grant", "--writer", "gw", "--pruner", "ret", "--dsn", PG_DSN])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert 'GRANT SELECT, INSERT ON "wardgate".audit_events TO "gw", "ret";' in lines
    assert 'GRANT DELETE ON "wardgate".audit_events TO "ret";' in lines
    writer_grants = [ln for ln in lines if ln.startswith("GRANT") and '"gw"' in ln]
    # UPDATE only of its head and of the spend rollup (derived from the events, outside the chain)
    assert not any(
        "DELETE" in ln or ("UPDATE" in ln and "audit_heads" not in ln and "audit_spend_" not in ln)
        for ln in writer_grants
    )
    with pytest.raises(ValueError, match="must differ"):
        grant_sql("wardgate", "gw", "gw")
    with pytest.raises(ValueError, match="not a plain SQL identifier"):
        grant_sql("wardgate", 'gw"; DROP TABLE x; --', "ret")


async def test_the_gateway_role_cannot_update_or_delete(roles):
    schema, writer, _ = roles
    gateway = await _service(schema, writer)  # a current schema: no DDL rights needed to start
    stage = AuditStage(gateway)
    for _ in range(3):
        await finish(stage, make_call())
    attacks = [
        "UPDATE audit_events SET team = 'other' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 2",
        "TRUNCATE audit_events",
        "DELETE FROM audit_heads",
        "INSERT INTO audit_anchors (shard, seq, prev_hash, ts) VALUES ('x', 5, 'h', 0)",
    ]
    for stmt in attacks:
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
            await _as(writer, schema, stmt)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="may not move backwards"):
        await _as(writer, schema, "UPDATE audit_heads SET seq = 1 WHERE shard = $1", gateway.shard)
    # The owner (here a superuser) is refused by the triggers, with a message saying why.
    with pytest.raises(
        asyncpg.InsufficientPrivilegeError, match=r"UPDATE on .*audit_events refused: .*append-only"
    ):
        await _as(None, schema, "UPDATE audit_events SET team = 'other' WHERE seq = 2")
    with pytest.raises(
        asyncpg.InsufficientPrivilegeError, match="only events below the chain's retention anchor"
    ):
        await _as(None, schema, "DELETE FROM audit_events WHERE seq = 2")
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match=r"TRUNCATE .*refused"):
        await _as(None, schema, "TRUNCATE audit_events")
    await gateway.close()
    assert (await _verify(schema)).ok


async def _verify(schema: str):
    store = PostgresStore(PG_DSN, schema)
    await store.open()
    try:
        return await verify(store)
    finally:
        await store.close()


async def test_the_pruner_prunes_verify_passes_and_catches_tampering_after(roles):
    schema, writer, pruner = roles
    t = time.time()
    gateway = await _service(schema, writer, retention_days=1)
    stage = AuditStage(gateway)
    for _ in range(4):
        await finish(stage, make_call(started=t - 10))
    with pytest.raises(asyncpg.InsufficientPrivilegeError):  # the gateway's retention cannot delete
        await gateway.prune(now=t + 2 * DAY)
    await gateway.close()
    head = (await _service_heads(schema))[gateway.shard]

    retention = await _service(schema, pruner, retention_days=1, shard_id="retention")
    deleted = await retention.prune(now=t + 2 * DAY)
    assert deleted >= 6  # the gateway's chain_open, 4 calls, close, (its failed retention event)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="retention anchor"):  # not above it
        await _as(pruner, schema, "DELETE FROM audit_events WHERE shard = $1", retention.shard)
    with pytest.raises(asyncpg.InsufficientPrivilegeError, match="permission denied"):
        await _as(pruner, schema, "UPDATE audit_events SET team = 'x'")
    await retention.close()

    report = await _verify(schema)
    assert report.ok, report.all_breaks()
    records = await _retention_records(schema)
    pruned = records[0]["data"]["pruned"][gateway.shard]
    assert pruned == {"from_seq": 1, "to_seq": head.seq, "head": {"seq": head.seq, "hash": head.hash}}

    owner = SimpleNamespace(store=PostgresStore(PG_DSN, schema))  # an attacker with the owner's rights
    await tamper(owner, "UPDATE audit_events SET team = 'forged' WHERE kind = 'retention'")
    report = await _verify(schema)
    assert not report.ok and report.first_break().problem.startswith("edited")


async def _service_heads(schema: str):
    store = PostgresStore(PG_DSN, schema)
    await store.open()
    try:
        return await store.heads(0.0)
    finally:
        await store.close()


async def _retention_records(schema: str) -> list[dict]:
    from gateway.audit.store.base import Filters

    store = PostgresStore(PG_DSN, schema)
    await store.open()
    try:
        return await store.query(Filters(kind="retention"), limit=10)
    finally:
        await store.close()


async def test_a_writer_role_on_an_old_schema_is_refused_with_what_to_run(pg_schema, roles):
    schema, writer, _ = roles
    await _as(None, schema, "UPDATE audit_meta SET v = 2 WHERE k = 'schema_version'")
    store = PostgresStore(_dsn_as(writer), schema)
    with pytest.raises(
        MigrationRefused, match=rf"version 2, this gateway needs {SCHEMA_VERSION}.*audit grant --apply"
    ):
        await store.open()
    await store.close()


async def test_the_prune_command_runs_as_the_pruner_in_a_chain_of_its_own(roles):
    schema, writer, pruner = roles
    gateway = await _service(schema, writer)
    await gateway.close()
    result = await asyncio.to_thread(
        CliRunner().invoke,
        audit_cli,
        ["prune", "--days", "1", "--dsn", _dsn_as(pruner), "--schema", schema],
        env={"WARDGATE_CONFIG": ""},
    )
    assert result.exit_code == 0, result.output
    assert "pruned 0 event(s)" in result.output  # nothing is a day old yet
    heads = await _service_heads(schema)
    assert any(shard.startswith("retention.") for shard in heads), heads  # its own chain, closed
    assert (await _verify(schema)).ok
