"""Store and service semantics, on the memory store and on real Redis."""

from __future__ import annotations

import asyncio

import pytest

from gateway.approvals.model import Status
from gateway.approvals.redis_store import RedisApprovalStore
from gateway.approvals.store import ListQuery
from gateway.errors import AlreadyDecided, AuditUnavailable, BadRequest, Conflict, NotFound, PermissionDenied
from tests.approvals.conftest import (
    ALICE_ADMIN,
    FINANCE,
    FINANCE_2,
    OTHER_AGENT,
    SUPPORT,
    RecordingAudit,
    chat_call,
    new_approval,
)
from tests.waiting import FakeClock, wait_until_async

BACKENDS = ["memory", "redis"]
ANSWER = {"kind": "json", "json": {"choices": [{"message": {"content": "secret plan"}}]}}


@pytest.mark.parametrize("backend", BACKENDS)
async def test_created_approval_reads_back_and_its_answer_is_sealed(make_service, backend: str) -> None:
    service = await make_service(backend)
    created = await new_approval(service, answer=ANSWER)
    got = await service.get(created.id)
    assert got is not None and got.to_dict() == created.to_dict()
    assert got.id.startswith("apr_") and got.status is Status.PENDING and got.has_answer
    assert got.principal == {"key_id": "agent-key", "team": "payments", "user": "alice"}
    assert got.tool_calls[0]["arguments"] == {"amount": 5000, "to": "ACME"}
    assert "secret plan" not in str(got.public())
    sealed = await service.store.get_answer(created.id)
    assert sealed and b"secret plan" not in sealed
    assert await service.answer(got) == ANSWER


@pytest.mark.parametrize("backend", BACKENDS)
async def test_list_is_newest_first_paged_and_filtered(make_service, backend: str) -> None:
    service = await make_service(backend)
    ids = []
    for i in range(7):
        call = chat_call(principal=OTHER_AGENT) if i % 2 else chat_call()
        call.run_id = f"run-{i % 3}"
        ids.append((await new_approval(service, call=call)).id)
    await service.deny(ids[0], FINANCE, "no")
    seen: list[str] = []
    cursor = None
    while True:
        page = await service.list(ListQuery(limit=3, cursor=cursor))
        seen += [a.id for a in page.items]
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == list(reversed(ids))
    assert [a.id for a in (await service.list(ListQuery(status="denied"))).items] == [ids[0]]
    assert {a.id for a in (await service.list(ListQuery(run="run-1"))).items} == {ids[1], ids[4]}
    assert {a.id for a in (await service.list(ListQuery(status="pending", run="run-0"))).items} == {
        ids[3],
        ids[6],
    }
    assert (await service.list(ListQuery(team="nobody"))).items == []
    with pytest.raises(BadRequest):
        await service.list(ListQuery(cursor="%%%not-a-cursor"))


@pytest.mark.parametrize("backend", BACKENDS)
async def test_concurrent_approve_and_deny_exactly_one_wins(make_service, backend: str) -> None:
    replica_a = await make_service(backend)
    replica_b = await make_service(backend, store=None) if backend == "redis" else replica_a
    for _ in range(25):
        approval = await new_approval(replica_a)
        results = await asyncio.gather(
            replica_a.approve(approval.id, FINANCE, "ok"),
            replica_b.deny(approval.id, FINANCE_2, "no"),
            return_exceptions=True,
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, BaseException)]
        assert len(winners) == 1 and len(losers) == 1
        assert isinstance(losers[0], AlreadyDecided) and losers[0].status == 409
        final = await replica_a.get(approval.id)
        assert final is not None and final.status is winners[0].status


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_distinct_approvers_are_needed_when_required(make_service, backend: str) -> None:
    service = await make_service(backend)
    approval = await new_approval(service, required=2)
    first = await service.approve(approval.id, FINANCE, "one")
    assert first.status is Status.PENDING and len(first.votes) == 1
    with pytest.raises(Conflict) as again:
        await service.approve(approval.id, FINANCE, "twice")
    assert again.value.code == "already_voted"
    second = await service.approve(approval.id, FINANCE_2, "two")
    assert second.status is Status.APPROVED and {v.user for v in second.votes} == {"carol", "dave"}
    # Concurrent votes from different reviewers both land.
    other = await new_approval(service, required=2)
    await asyncio.gather(service.approve(other.id, FINANCE, None), service.approve(other.id, FINANCE_2, None))
    assert (await service.get(other.id)).status is Status.APPROVED


@pytest.mark.parametrize("backend", BACKENDS)
async def test_four_eyes_refuses_the_requester_even_with_an_admin_key(make_service, backend: str) -> None:
    service = await make_service(backend)
    approval = await new_approval(service)
    with pytest.raises(PermissionDenied) as refused:
        await service.approve(approval.id, ALICE_ADMIN, "my own")
    assert refused.value.code == "self_approval_forbidden"
    assert (await service.get(approval.id)).status is Status.PENDING
    with pytest.raises(PermissionDenied) as refused:  # nor deny it: four-eyes holds for both decisions
        await service.deny(approval.id, ALICE_ADMIN, "changed my mind")
    assert refused.value.code == "self_approval_forbidden" and "approve or deny" in refused.value.message
    assert (await service.get(approval.id)).status is Status.PENDING


@pytest.mark.parametrize("backend", BACKENDS)
async def test_reviewer_outside_the_group_is_refused_and_unknown_or_expired_ids_conflict(
    make_service, backend: str
) -> None:
    clock = FakeClock()
    service = await make_service(backend, clock=clock)
    approval = await new_approval(service, groups=("finance",))
    with pytest.raises(PermissionDenied) as wrong_group:
        await service.approve(approval.id, SUPPORT, None)
    assert wrong_group.value.code == "approver_group_required" and wrong_group.value.status == 403
    with pytest.raises(NotFound):
        await service.approve("apr_" + "0" * 24, FINANCE, None)
    short = await new_approval(service, ttl_s=30)
    clock.advance(30)
    with pytest.raises(Conflict) as expired:
        await service.approve(short.id, FINANCE, None)
    assert expired.value.code == "approval_expired" and expired.value.status == 409
    assert (await service.get(short.id)).status is Status.EXPIRED
    await service.approve(approval.id, FINANCE, None)
    with pytest.raises(AlreadyDecided):
        await service.deny(approval.id, FINANCE, None)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_every_state_change_goes_to_the_audit_service(make_service, backend: str) -> None:
    audit = RecordingAudit()
    service = await make_service(backend, audit=audit)
    approval = await new_approval(service, required=2)
    await service.approve(approval.id, FINANCE, "a")
    await service.approve(approval.id, FINANCE_2, "b")
    assert audit.kinds(approval.id) == ["created", "vote", "approved"]
    assert all("secret" not in str(p) for _, p in audit.events)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_decision_the_audit_log_refuses_is_not_stored_but_the_queue_keeps_working(
    make_service, backend: str
) -> None:
    class Flaky:
        broken = True

        async def record(self, kind: str, payload: dict) -> None:
            if self.broken:
                raise RuntimeError("audit store down")

    audit = Flaky()
    service = await make_service(backend, audit=audit)
    approval = await new_approval(service)  # creation is not an admin decision: it goes through
    for decide in (service.approve, service.deny):
        with pytest.raises(AuditUnavailable):
            await decide(approval.id, FINANCE, None)
        assert (await service.get(approval.id)).status is Status.PENDING  # type: ignore[union-attr]
    audit.broken = False
    assert (await service.approve(approval.id, FINANCE, None)).status is Status.APPROVED


@pytest.mark.parametrize("backend", BACKENDS)
async def test_expiry_sweep_expires_once_across_replicas_and_wakes_waiters(
    make_service, backend: str
) -> None:
    audit = RecordingAudit()
    clock = FakeClock()
    replica_a = await make_service(backend, audit=audit, sweep_interval_s=0.05, clock=clock)
    replica_b = (
        await make_service(backend, audit=audit, sweep_interval_s=0.05, clock=clock)
        if backend == "redis"
        else replica_a
    )
    approval = await new_approval(replica_a, ttl_s=30)
    waiter = asyncio.create_task(replica_b.wait(approval.id, 5.0))
    await wait_until_async(lambda: len(replica_b.waiters) == 1)
    clock.advance(30)
    counts = await asyncio.gather(*(r.sweep_once() for r in (replica_a, replica_b, replica_a, replica_b)))
    if sum(counts) == 0:
        # Every sweeper lost the lock to an earlier interval's (Redis leases run on Redis' own
        # clock): try once more after it lapses.
        await asyncio.sleep(0.06)
        counts = [await replica_a.sweep_once()]
    assert sum(counts) <= 1
    final = await asyncio.wait_for(waiter, 2.0)
    assert final.status is Status.EXPIRED and final.outcome_reason == "approval expired"
    assert audit.kinds(approval.id).count("expired") == 1


@pytest.mark.parametrize("backend", BACKENDS)
async def test_background_sweeper_expires_without_any_waiter(make_service, backend: str) -> None:
    clock = FakeClock()
    service = await make_service(backend, sweep=True, sweep_interval_s=0.05, clock=clock)
    approval = await new_approval(service, ttl_s=30)
    clock.advance(30)

    def counted() -> bool:
        # The sweeper counts the expiry after its write: wait for the count, not the record.
        clock.advance(0.05)  # the in-memory sweep lock's lease lapses between sweeps
        return service.metrics.outcomes.labels("expired")._value.get() >= 1

    await wait_until_async(counted, message="the sweeper did not expire the approval")
    assert (await service.get(approval.id)).status is Status.EXPIRED
    assert service.metrics.outcomes.labels("expired")._value.get() == 1


async def test_pub_sub_wakes_a_waiter_on_another_replica(make_service) -> None:
    replica_a = await make_service("redis")
    replica_b = await make_service("redis")
    approval = await new_approval(replica_a)
    waiter = asyncio.create_task(replica_a.wait(approval.id, 10.0))
    await wait_until_async(lambda: len(replica_a.waiters) == 1)
    await replica_b.approve(approval.id, FINANCE, "go")
    woken = await asyncio.wait_for(waiter, 5.0)  # the re-check is 10 s away: the message woke it
    assert woken.status is Status.APPROVED and woken.comment == "go"


async def test_lost_messages_are_recovered_by_a_resync(make_service) -> None:
    service = await make_service("memory")
    approval = await new_approval(service)
    waiter = asyncio.create_task(service.wait(approval.id, 10.0))
    await wait_until_async(lambda: len(service.waiters) == 1)
    # Decide behind the waiters' back (as if the pub/sub message were lost), then resync.
    listeners, service.store._listeners = service.store._listeners, []
    await service.approve(approval.id, FINANCE, None)
    service.store._listeners = listeners
    await asyncio.sleep(0)  # let the waiter run, were it (wrongly) woken
    assert not waiter.done()
    service.store._emit("resync", None)
    assert (await asyncio.wait_for(waiter, 1.0)).status is Status.APPROVED


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_waiter_that_goes_away_leaves_the_approval_pending(make_service, backend: str) -> None:
    service = await make_service(backend)
    approval = await new_approval(service)
    waiter = asyncio.create_task(service.wait(approval.id, 10.0))
    await wait_until_async(lambda: len(service.waiters) == 1)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert len(service.waiters) == 0
    assert (await service.get(approval.id)).status is Status.PENDING
    assert service.metrics.held._value.get() == 0


async def test_approvals_survive_a_gateway_restart_in_redis(
    make_service, redis_url: str, key_prefix: str
) -> None:
    first = await make_service("redis")
    approval = await new_approval(first, answer=ANSWER)
    await first.close()
    second = await make_service("redis", store=RedisApprovalStore.from_url(redis_url, key_prefix, 60))
    survived = await second.get(approval.id)
    assert survived is not None and survived.status is Status.PENDING
    assert (await second.approve(approval.id, FINANCE, None)).status is Status.APPROVED
    assert await second.answer(survived) == ANSWER


@pytest.mark.parametrize("backend", BACKENDS)
async def test_pending_gauge_and_outcome_metrics(make_service, backend: str) -> None:
    service = await make_service(backend)
    a = await new_approval(service)
    b = await new_approval(service)
    await service.flush_metrics()
    assert service.metrics.pending._value.get() == 2
    await service.approve(a.id, FINANCE, None)
    await service.deny(b.id, FINANCE, None)
    await service.flush_metrics()
    assert service.metrics.pending._value.get() == 0
    assert service.metrics.outcomes.labels("approved")._value.get() == 1
    assert service.metrics.outcomes.labels("denied")._value.get() == 1
    assert service.metrics.time_to_decision.labels("approved")._sum.get() >= 0


@pytest.mark.parametrize("backend", BACKENDS)
async def test_only_the_causing_key_may_withdraw_and_request_approvals_are_single_use(
    make_service, backend: str
) -> None:
    service = await make_service(backend)
    approval = await new_approval(service, phase="request")
    with pytest.raises(PermissionDenied):
        await service.cancel(approval.id, "other-key")
    await service.approve(approval.id, FINANCE, None)
    await service.consume(approval.id)
    with pytest.raises(Conflict) as used:
        await service.consume(approval.id)
    assert used.value.code == "approval_used"
    withdrawn = await new_approval(service)
    assert (await service.cancel(withdrawn.id, "agent-key")).status is Status.CANCELLED
