"""Group commit durability: no acknowledged event is ever lost; failures fail the call closed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from audit_helpers import finish, make_call
from prometheus_client import CollectorRegistry

from gateway.audit.service import AuditService
from gateway.audit.stage import AuditStage
from gateway.audit.store import make_store
from gateway.audit.store.base import Filters
from gateway.audit.verify import verify
from gateway.errors import AuditUnavailable
from gateway.observability.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]

_WRITER = r"""
import asyncio, sys
from gateway.audit.config import AuditSettings
from gateway.audit.events import build_record_event
from gateway.audit.service import AuditService
from gateway.audit.store import make_store

async def main():
    settings = AuditSettings.model_validate_json(sys.argv[1])
    service = AuditService(settings, make_store(settings, None))
    await service.start()
    out = sys.stdout

    async def worker(w):
        i = 0
        while True:
            payload = {"worker": w, "n": i}
            event = build_record_event("admin", payload)
            await service.record_event(event)
            out.write(event["id"] + "\n")
            out.flush()
            i += 1

    await asyncio.gather(*(worker(w) for w in range(48)))

asyncio.run(main())
"""


async def test_kill_mid_batch_loses_no_acknowledged_event_and_the_chain_still_verifies(
    audit_settings, tmp_path
):
    settings = audit_settings.model_copy(update={"batch_interval_ms": 2.0, "batch_size": 64})
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _WRITER,
        settings.model_dump_json(),
        cwd=REPO,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    acked: list[str] = []
    try:
        while len(acked) < 3000:
            line = await proc.stdout.readline()
            if not line:
                pytest.fail("writer died early: " + (await proc.stderr.read()).decode()[-2000:])
            acked.append(line.decode().strip())
    finally:
        proc.send_signal(signal.SIGKILL)  # no shutdown, no flush: a crash in the middle of a batch
        await proc.wait()

    store = make_store(settings, tmp_path)
    await store.open()
    try:
        stored = {ev["id"] async for ev in _all_ids(store)}
        missing = [i for i in acked if i not in stored]
        assert not missing, f"{len(missing)} acknowledged events lost, e.g. {missing[:3]}"
        assert len(stored) >= len(acked)
        report = await verify(store)
        assert report.ok, report.all_breaks()[:3]
    finally:
        await store.close()

    # Restart on the same store: a new chain, and the whole store still verifies.
    restarted = AuditService(settings, make_store(settings, tmp_path))
    await restarted.start()
    try:
        await finish(AuditStage(restarted), make_call())
        report = await verify(restarted.store)
        assert report.ok and len(report.shards) == 2
    finally:
        await restarted.close()


async def _all_ids(store):
    after = None
    while True:
        page = await store.query(Filters(), after=after, limit=1000, desc=False)
        for ev in page:
            yield ev
        if len(page) < 1000:
            return
        after = (page[-1]["ts"], page[-1]["id"])


class FlakyStore:
    """Wraps a real store; ``append`` fails while ``broken`` is set."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.broken = False

    def __getattr__(self, name):
        return getattr(self.inner, name)

    async def append(self, shard, rows, head):
        if self.broken:
            raise ConnectionError("database went away")
        await self.inner.append(shard, rows, head)


async def test_failed_write_fails_the_call_closed_shows_in_metrics_and_readiness_then_recovers(
    audit_settings, tmp_path
):
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    flaky = FlakyStore(make_store(audit_settings, tmp_path))
    service = AuditService(audit_settings, flaky, metrics=metrics)  # type: ignore[arg-type]
    await service.start()
    try:
        stage = AuditStage(service, metrics=metrics)
        await finish(stage, make_call())
        flaky.broken = True
        with pytest.raises(AuditUnavailable):
            await finish(stage, make_call())
        # One observation of the audit hook per call, refused or not.
        assert registry.get_sample_value("wardgate_stage_duration_seconds_count", {"stage": "audit"}) == 2.0
        with pytest.raises(AuditUnavailable):
            await service.ready()
        assert registry.get_sample_value("wardgate_audit_write_failures_total") >= 1
        await finish(AuditStage(service, fail_closed=False), make_call())  # fail open: no raise
        flaky.broken = False
        await finish(stage, make_call())
        await service.ready()
        report = await verify(flaky.inner)
        assert report.ok, report.all_breaks()
    finally:
        await service.close()


async def test_record_returns_only_when_the_event_is_readable_by_another_connection(make_service, tmp_path):
    service = await make_service()
    call = make_call()
    await finish(AuditStage(service), call)
    other = make_store(service.settings, tmp_path)
    await other.open()
    try:
        found = await other.query(Filters(request_id=call.request_id), limit=5)
        assert len(found) == 1
    finally:
        await other.close()


async def test_concurrent_records_share_group_commits(make_service):
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    service = await make_service(metrics=metrics)
    await asyncio.gather(*(service.record("admin", {"n": i}) for i in range(500)))
    commits = registry.get_sample_value("wardgate_audit_batch_events_count")
    assert commits is not None and commits < 250  # far fewer commits than events
    assert registry.get_sample_value("wardgate_audit_events_total", {"kind": "admin"}) == 500


async def test_overloaded_writer_refuses_at_once_instead_of_queueing_forever(make_service):
    service = await make_service(max_pending=10)
    results = await asyncio.gather(
        *(service.record("admin", {"n": i}) for i in range(200)), return_exceptions=True
    )
    refused = [r for r in results if isinstance(r, AuditUnavailable)]
    assert refused and len(refused) < 200
