"""The audit component wires its stage, service, readiness and closers for each backend."""

from __future__ import annotations

import logging

import pytest
from audit_helpers import SECRET_KEY, finish, make_call

from gateway.audit.component import Audit
from gateway.audit.config import AuditSettings
from gateway.audit.store.base import Filters
from gateway.context import AppContext
from gateway.errors import ServiceUnavailable
from gateway.keys.store import KeyStore
from gateway.models import ModelCatalog
from gateway.observability.component import Observability
from gateway.settings import Settings


def _ctx(tmp_path, audit: AuditSettings | dict, **sections) -> AppContext:
    settings = Settings(data_dir=tmp_path / "data", audit=audit, **sections)
    return AppContext(settings=settings, keys=KeyStore({}, {}), models=ModelCatalog({}))


async def setup(ctx: AppContext) -> Audit:
    """Start the audit component the way the app does: after observability, which it is given."""
    observability = Observability()
    audit = Audit(observability)
    await observability.start(ctx)
    await audit.start(ctx)
    return audit


async def test_default_settings_give_an_sqlite_log_in_the_data_dir(tmp_path):
    ctx = _ctx(tmp_path, AuditSettings())
    audit = await setup(ctx)
    try:
        # A queryable store also gets the capture stage (assembles streamed answers for calls
        # whose policy asked for content capture).
        assert [s.name for s in ctx.stages] == ["capture", "audit"]
        assert audit.service is not None and audit.observability.metrics is not None
        assert "audit" in ctx.ready_checks
        await ctx.ready_checks["audit"]()
        call = make_call()
        await finish(ctx.stages, call)
        [event] = await audit.service.store.query(Filters(request_id=call.request_id))
        assert event["decision"] == "allow"
        assert (tmp_path / "data" / "audit.db").exists()
    finally:
        await ctx.close()


async def test_postgres_backend_migrates_its_schema_on_start(tmp_path, pg_schema, pg_dsn):
    ctx = _ctx(tmp_path, AuditSettings(backend="postgres", postgres_dsn=pg_dsn, postgres_schema=pg_schema))
    audit = await setup(ctx)
    try:
        await ctx.ready_checks["audit"]()
        await audit.service.record("policy", {"revision": "rev-8", "actor": "ops"})
        [event] = await audit.service.store.query(Filters(kind="policy"))
        assert event["data"] == {"revision": "rev-8", "actor": "ops"}
    finally:
        await ctx.close()
    again = _ctx(tmp_path, AuditSettings(backend="postgres", postgres_dsn=pg_dsn, postgres_schema=pg_schema))
    await setup(again)  # a second start finds the schema in place
    await again.close()


async def test_log_backend_writes_one_json_line_per_event_and_refuses_queries(tmp_path, capsys):
    ctx = _ctx(tmp_path, AuditSettings(backend="log"))  # no log_path: stderr
    audit = await setup(ctx)
    try:
        await finish(ctx.stages, make_call())
        lines = capsys.readouterr().err.splitlines()
        assert any('"kind":"call"' in line and '"hash":"' in line for line in lines)
        assert not any(SECRET_KEY in line for line in lines)
        with pytest.raises(ServiceUnavailable):
            await audit.service.store.query(Filters())
    finally:
        await ctx.close()


@pytest.mark.parametrize(
    "spelling",
    [
        {"audit": {"enabled": False}, "observability": {"tracing": {"enabled": True, "exporter": "none"}}},
        # The pre-observability spelling still works (logged as deprecated).
        {"audit": {"enabled": False, "tracing": {"enabled": True, "exporter": "none"}}},
    ],
)
async def test_disabled_audit_still_counts_metrics_and_traces(tmp_path, spelling, caplog):
    with caplog.at_level(logging.WARNING, logger="wardgate.settings"):
        ctx = _ctx(tmp_path, **spelling)
    deprecated = [r.getMessage() for r in caplog.records if r.name == "wardgate.settings"]
    assert deprecated == (
        ["settings: audit.tracing is deprecated, use observability.tracing"]
        if "tracing" in spelling["audit"]
        else []
    )
    audit = await setup(ctx)
    try:
        assert audit.service is None and audit.observability.tracer is not None
        assert [s.name for s in ctx.stages] == ["audit"]
        await finish(ctx.stages, make_call())
        # The catalog here is empty, so the model is counted under "unknown", never named.
        assert (
            ctx.registry.get_sample_value(
                "wardgate_requests_total",
                {"endpoint": "chat.completions", "model": "unknown", "status": "200"},
            )
            == 1.0
        )
    finally:
        await ctx.close()
