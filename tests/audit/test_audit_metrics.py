"""``/metrics`` exposes the request, decision, stage, upstream, token, cost and audit series."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
from audit_helpers import finish, make_call
from prometheus_client import CollectorRegistry

from gateway.audit.stage import AuditStage
from gateway.callstate import Budget
from gateway.context import AppContext
from gateway.errors import BudgetExceeded
from gateway.keys.store import KeyStore
from gateway.models import ModelCatalog
from gateway.observability.config import MetricsSettings
from gateway.observability.metrics import Metrics, metrics_route
from gateway.settings import Settings

REPO = Path(__file__).resolve().parents[2]


async def _scrape(registry: CollectorRegistry) -> str:
    from starlette.applications import Starlette

    app = Starlette(routes=[metrics_route()])
    app.state.ctx = AppContext(
        settings=Settings(), keys=KeyStore({}, {}), models=ModelCatalog({}), registry=registry
    )
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw") as client:
        r = await client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return r.text


async def test_metrics_expose_every_series_after_traffic(make_service):
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    service = await make_service(metrics=metrics)
    stage = AuditStage(service, metrics=metrics)
    pii = {"entities": {"EMAIL_ADDRESS": 2}, "locations": [], "unscanned": 0}
    first = make_call(pii=pii)
    first.budget = Budget(0.01, remaining_usd={"team:team-a": 12.5, "run:run-1": 0.5})
    await finish(stage, first)
    await finish(stage, make_call(outcome="deny"))
    await finish(stage, make_call(outcome="failed"))
    limited = make_call(outcome="pending")
    limited.error = BudgetExceeded("team budget exhausted")
    await finish(stage, limited)
    await service.record("approval", {"id": "apr_1", "status": "approved"})
    text = await _scrape(registry)
    expected = [
        'wardgate_requests_total{endpoint="chat.completions",model="gpt-4o-mini",status="200"} 1.0',
        'wardgate_requests_total{endpoint="chat.completions",model="gpt-4o-mini",status="403"} 1.0',
        'wardgate_requests_total{endpoint="chat.completions",model="gpt-4o-mini",status="502"} 1.0',
        'wardgate_decisions_total{outcome="deny",phase="request",rule="model_allowlist",stage="policy_request"} 1.0',
        'wardgate_stage_duration_seconds_bucket{le="0.00025",stage="policy_request"}',
        'wardgate_upstream_duration_seconds_count{deployment="openai-east",model="gpt-4o-mini"} 2.0',
        'wardgate_upstream_errors_total{code="upstream_error",deployment="openai-east"} 1.0',
        'wardgate_tokens_total{direction="input",model="gpt-4o-mini",team="team-a"} 120.0',
        'wardgate_tokens_total{direction="output",model="gpt-4o-mini",team="team-a"} 30.0',
        'wardgate_cost_usd_total{model="gpt-4o-mini",team="team-a"} 0.00125',
        'wardgate_limit_rejections_total{code="budget_exceeded"} 1.0',
        'wardgate_budget_remaining_usd{scope="team:team-a"} 12.5',
        'wardgate_audit_events_total{kind="call"} 4.0',
        'wardgate_audit_events_total{kind="approval"} 1.0',
        "wardgate_audit_record_seconds_count",
        "wardgate_audit_commit_seconds_count",
        "wardgate_audit_batch_events_count",
        "wardgate_audit_write_failures_total 0.0",
        'wardgate_request_duration_seconds_count{endpoint="chat.completions"} 4.0',
    ]
    missing = [line for line in expected if line not in text]
    assert not missing, missing
    # The audit hook's own time is one observation per call (it was once counted twice:
    # from the call's timings and again by the hook).
    assert registry.get_sample_value("wardgate_stage_duration_seconds_count", {"stage": "audit"}) == 4.0
    assert "run-1" not in text and "req_" not in text  # no run or request ids as label values


async def test_label_values_are_bounded_per_label():
    registry = CollectorRegistry()
    metrics = Metrics(registry, MetricsSettings(max_label_values=3))
    stage = AuditStage(None, metrics=metrics)
    for i in range(10):
        await finish(stage, make_call(model=f"model-{i}", team=f"team-{i}"))
    text = await _scrape(registry)
    assert 'model="other"' in text and 'team="other"' in text
    assert 'model="model-5"' not in text
    assert (
        registry.get_sample_value(
            "wardgate_requests_total", {"endpoint": "chat.completions", "model": "other", "status": "200"}
        )
        == 7.0
    )


_WORKER = r"""
import sys
from prometheus_client import CollectorRegistry
sys.path.insert(0, sys.argv[2])
from audit_helpers import make_call
from gateway.observability.metrics import Metrics, render
if sys.argv[1] == "write":
    m = Metrics(CollectorRegistry())
    call = make_call()
    m.observe_call(call, 200, 0.3)
else:
    sys.stdout.write(render(CollectorRegistry()).decode())
"""


def test_multiprocess_mode_merges_the_workers_series(tmp_path):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    here = str(Path(__file__).parent)
    for _ in range(2):
        subprocess.run([sys.executable, "-c", _WORKER, "write", here], env=env, check=True, cwd=REPO)
    out = subprocess.run(
        [sys.executable, "-c", _WORKER, "read", here],
        env=env,
        check=True,
        cwd=REPO,
        capture_output=True,
        text=True,
    ).stdout
    assert 'wardgate_requests_total{endpoint="chat.completions",model="gpt-4o-mini",status="200"} 2.0' in out
    assert 'wardgate_tokens_total{direction="input",model="gpt-4o-mini",team="team-a"} 240.0' in out
