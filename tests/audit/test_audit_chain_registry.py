"""The chain registry: every chain opens, closes or is named abandoned, and its ends are checked.

An attacker with database write access appends correctly hashed events after a
``chain_close``, past a chain's head row, or past the head a dead chain had when it was named
abandoned; deletes a tail together with its head row; or forges a chain of their own. Each is
caught by ``verify`` (on SQLite and PostgreSQL), except a forged chain that copies the whole
registry protocol, which only an anchor can refute: it is reported as unwitnessed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os

from audit_helpers import tamper
from typer.testing import CliRunner

from gateway.audit.chain import Head, ShardChain
from gateway.audit.cli import app as audit_cli
from gateway.audit.events import base_event
from gateway.audit.schema import GENESIS_HASH, ROW_COLUMNS
from gateway.audit.store.base import Filters
from gateway.audit.verify import verify

_INSERT = f"INSERT INTO audit_events ({', '.join(ROW_COLUMNS)}) VALUES ({', '.join(f'${i + 1}' for i in range(len(ROW_COLUMNS)))})"
_SET_HEAD = "UPDATE audit_heads SET seq = $2, hash = $3 WHERE shard = $1"


async def _crash(service) -> None:
    """Stop like ``kill -9``: no ``chain_close``, no lease renewal from now on."""
    for task in service._tasks:
        task.cancel()
    for task in service._tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    service._closed = True
    await service.writer.close()
    await service.store.close()


async def _last(service, shard: str) -> Head:
    rows = [r async for r in service.store.iter_chain(shard)]
    return Head(rows[-1].seq, rows[-1].hash) if rows else Head(0, GENESIS_HASH)


async def _forge(service, shard: str, kinds: tuple[str, ...] = ("admin",), *, move_head: bool) -> Head:
    """Append correctly hashed events to ``shard`` straight into the tables (as an attacker)."""
    chain = ShardChain(shard, await _last(service, shard))
    sealed = chain.seal([base_event(k) | {"data": {"forged": True}} for k in kinds])
    for row in sealed.rows:
        await tamper(service, _INSERT, *row)
    if move_head:
        await tamper(service, _SET_HEAD, shard, sealed.head.seq, sealed.head.hash)
        await tamper(
            service,
            "INSERT INTO audit_heads (shard, seq, hash, ts) SELECT $1, $2, $3, 0 "
            "WHERE NOT EXISTS (SELECT 1 FROM audit_heads WHERE shard = $1)",
            shard,
            sealed.head.seq,
            sealed.head.hash,
        )
    return sealed.head


async def _events(service, kind: str) -> list[dict]:
    return await service.store.query(Filters(kind=kind), limit=100, desc=False)


def _problems(report, shard: str) -> list[str]:
    return [b.problem for b in report.all_breaks() if b.shard == shard]


async def test_chain_open_names_instance_and_predecessor_and_a_clean_stop_closes(make_service):
    first = await make_service(shard_id="gw-east")
    await first.record("admin", {"n": 1})
    await first.close()
    second = await make_service(shard_id="gw-east")
    other = await make_service(shard_id="gw-west")
    opens = {ev["shard"]: ev["data"] for ev in await _events(second, "chain_open")}
    assert opens[first.shard]["instance"] == "gw-east" and opens[first.shard]["predecessor"] is None
    assert opens[second.shard]["instance"] == "gw-east"
    assert opens[second.shard]["predecessor"] == first.shard
    assert opens[other.shard]["predecessor"] is None  # another instance's chains are not its past
    [close] = await _events(second, "chain_close")
    assert close["shard"] == first.shard and close["data"] == {"reason": "shutdown"}
    report = await verify(second.store)
    assert report.ok, report.all_breaks()
    closed = next(s for s in report.shards if s.shard == first.shard)
    assert closed.closed and closed.unwitnessed_from is None  # second's chain_open witnessed its end
    assert await _events(second, "chain_abandoned") == []  # a closed chain is never abandoned


async def test_a_dead_chain_is_named_abandoned_once_and_a_live_idle_one_never(make_service):
    dead = await make_service(shard_id="gw-a", chain_lease_s=2.0)
    await dead.record("admin", {"n": 1})
    await _crash(dead)
    idle = await make_service(shard_id="gw-b", chain_lease_s=0.3)  # alive and quiet: renews every 0.1 s
    # Each chain is judged by the lease it declared (lease.py): dead's 2 s have run out by then,
    # and idle's quick sweeps never name nxt or gw-c (2 s leases renewed every 0.67 s), which
    # they did by their own 0.3 s lease on a loaded machine.
    await asyncio.sleep(2.5)
    nxt = await make_service(shard_id="gw-a", chain_lease_s=2.0)
    marks = await _events(nxt, "chain_abandoned")
    assert [m["data"]["shard"] for m in marks] == [dead.shard]
    # Named by nxt's start, or already by idle's lease sweep (it is a live chain too).
    assert marks[0]["shard"] in {nxt.shard, idle.shard} and marks[0]["data"]["seq"] == 2
    assert marks[0]["data"]["hash"] == (await _last(nxt, dead.shard)).hash
    await make_service(shard_id="gw-c", chain_lease_s=2.0)  # the next start does not repeat it
    marks = await _events(nxt, "chain_abandoned")
    assert [m["data"]["shard"] for m in marks] == [dead.shard]  # idle never named
    report = await verify(nxt.store)
    assert report.ok, report.all_breaks()
    assert next(s for s in report.shards if s.shard == dead.shard).abandoned_by == marks[0]["shard"]


async def test_a_live_chains_lease_loop_names_a_chain_that_died_after_it_started(make_service):
    live = await make_service(shard_id="gw-live", chain_lease_s=0.06)
    dead = await make_service(shard_id="gw-dead", chain_lease_s=0.3)  # named by its own lease
    await _crash(dead)
    for _ in range(200):
        if await _events(live, "chain_abandoned"):
            break
        await asyncio.sleep(0.02)
    [mark] = await _events(live, "chain_abandoned")
    assert mark["data"]["shard"] == dead.shard


async def test_an_event_appended_after_chain_close_is_caught(make_service):
    closed = await make_service()
    await closed.record("admin", {"n": 1})
    await closed.close()
    witness = await make_service()
    for move_head in (False, True):
        await _forge(witness, closed.shard, move_head=move_head)
        problems = _problems(await verify(witness.store), closed.shard)
        assert any(p.startswith("appended after close") for p in problems), problems


async def test_an_event_appended_past_a_dead_chains_head_is_caught_with_or_without_the_head_row(
    make_service,
):
    dead = await make_service(chain_lease_s=0.05)  # dead by its own lease 0.05 s after the crash
    await dead.record("admin", {"n": 1})
    await _crash(dead)
    live = await make_service()  # its chain_open witnesses dead's head, seq 2
    await _forge(live, dead.shard, move_head=False)
    problems = _problems(await verify(live.store), dead.shard)
    assert any(p.startswith("appended past head") for p in problems), problems
    # Moving the head row too, before anyone named the chain dead: nothing in the database
    # refutes it (an anchor does); verify says the forged tail is vouched for by nothing.
    await tamper(live, _SET_HEAD, dead.shard, 3, (await _last(live, dead.shard)).hash)
    report = await verify(live.store)
    assert report.ok and next(s for s in report.shards if s.shard == dead.shard).unwitnessed_from == 3
    await tamper(live, "DELETE FROM audit_events WHERE shard = $1 AND seq = 3", dead.shard)
    await tamper(live, _SET_HEAD, dead.shard, 2, (await _last(live, dead.shard)).hash)
    await asyncio.sleep(0.1)
    marker = await make_service(chain_lease_s=0.05)  # names dead (not live: its own lease is 300 s)
    assert dead.shard in str(await _events(marker, "chain_abandoned"))
    await _forge(marker, dead.shard, move_head=True)  # after the mark: caught
    problems = _problems(await verify(marker.store), dead.shard)
    assert any(p.startswith("appended after abandonment") for p in problems), problems


async def test_a_tail_deleted_with_its_head_row_is_caught(make_service):
    service = await make_service()
    for i in range(5):
        await service.record("admin", {"n": i})
    await tamper(service, "DELETE FROM audit_events WHERE shard = $1 AND seq >= 4", service.shard)
    await tamper(service, "DELETE FROM audit_heads WHERE shard = $1", service.shard)
    problems = _problems(await verify(service.store), service.shard)
    assert any(p.startswith("no head row") for p in problems), problems


async def test_a_forged_chain_is_caught_without_chain_open_and_unwitnessed_with_it(make_service):
    service = await make_service()
    await service.record("admin", {"n": 1})
    await _forge(service, "forged.1", ("admin", "admin"), move_head=True)
    problems = _problems(await verify(service.store), "forged.1")
    assert any(p.startswith("no chain_open") for p in problems), problems
    await _forge(service, "forged.2", ("chain_open", "admin"), move_head=True)
    report = await verify(service.store)
    forged = next(s for s in report.shards if s.shard == "forged.2")
    assert not forged.breaks and forged.unwitnessed_from == 1  # nothing else ever vouched for it
    await _forge(service, "forged.3", ("chain_open", "admin"), move_head=False)
    assert any(p.startswith("no head row") for p in _problems(await verify(service.store), "forged.3"))


async def test_cli_verify_strict_fails_on_an_unwitnessed_tail(make_service, monkeypatch):
    service = await make_service()
    await service.record("admin", {"n": 1})
    store = service.store
    if store.name == "sqlite":
        args = ["verify", "--backend", "sqlite", "--sqlite", str(store.path)]
    else:
        args = ["verify", "--backend", "postgres", "--dsn", store.dsn, "--schema", store.schema]
    monkeypatch.setenv("WARDGATE_CONFIG", os.devnull)  # an empty config: the flags name the store
    lenient = await asyncio.to_thread(CliRunner().invoke, audit_cli, args)
    assert lenient.exit_code == 0 and "UNWITNESSED" in lenient.output, lenient.output
    strict = await asyncio.to_thread(CliRunner().invoke, audit_cli, [*args, "--strict"])
    assert strict.exit_code == 1 and service.shard in strict.output, strict.output
