"""A reviewer's decision takes effect only if its audit event is stored.

The real gateway (Redis-backed queue, the real response policy asking for a finance approval)
with its audit log in SQLite and in PostgreSQL. While the audit store refuses writes, approving
or denying answers 503 ``audit_unavailable``, the approval stays pending and the held call keeps
waiting; once the store is back, the same approval goes through and the call gets its answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis as redis_sync

from gateway.audit.component import Audit
from gateway.audit.config import AuditSettings
from tests.approvals.e2e_app import TRANSFER_TOOLS as TOOLS
from tests.approvals.e2e_app import approvals_settings
from tests.audit.audit_helpers import PG_DSN, pg_execute
from tests.harness import APPROVER_KEY, AUDITOR_KEY, TEST_KEY, RunningGateway, running_gateway
from tests.waiting import wait_until

APPROVER = {"authorization": f"Bearer {APPROVER_KEY}"}


@pytest.fixture(params=["sqlite", "postgres"])
def gw(
    request: pytest.FixtureRequest, tmp_path: Path, upstream: Any, redis_url: str
) -> Iterator[RunningGateway]:
    prefix = f"wgtest:{uuid.uuid4().hex[:12]}"
    settings = approvals_settings(
        tmp_path, upstream.base_url, backend="redis", redis_url=redis_url, key_prefix=prefix
    )
    schema = f"wgtest_apr_audit_{uuid.uuid4().hex[:10]}"
    settings.audit = AuditSettings(
        enabled=True,
        backend=request.param,
        sqlite_path=tmp_path / "audit.db",
        postgres_dsn=PG_DSN,
        postgres_schema=schema,
    )
    with running_gateway(settings) as running:
        yield running
    if request.param == "postgres":
        pg_execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    client = redis_sync.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match="{" + prefix + ":apr}:*", count=500))
    if keys:
        client.delete(*keys)
    client.close()


def _pending(gw: RunningGateway) -> str:
    data = wait_until(
        lambda: httpx.get(gw.url + "/admin/approvals?status=pending", headers=APPROVER).json()["data"],
        message="no approval became pending",
    )
    return data[0]["id"]


def _break(gw: RunningGateway) -> Any:
    store = gw.component(Audit).service.store

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("database went away")

    store.append = broken
    return store


def test_a_decision_the_audit_log_refuses_is_not_applied_and_the_call_keeps_waiting(
    gw: RunningGateway, upstream: Any
) -> None:
    upstream.script_tool_call("transfer_funds", {"amount": 5000, "to": "ACME"}, times=1)
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, timeout=60, max_retries=0)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(
            client.chat.completions.create,
            model="gpt-test",
            tools=TOOLS,
            messages=[{"role": "user", "content": "Pay the ACME invoice"}],
        )
        approval_id = _pending(gw)
        store = _break(gw)
        try:
            for action in ("approve", "deny"):
                r = httpx.post(
                    f"{gw.url}/admin/approvals/{approval_id}/{action}",
                    json={"comment": "ok"},
                    headers=APPROVER,
                )
                assert r.status_code == 503, r.text
                assert r.json()["error"]["code"] == "audit_unavailable"
            record = httpx.get(f"{gw.url}/admin/approvals/{approval_id}", headers=APPROVER).json()
            assert record["status"] == "pending" and not record.get("votes")
            assert not held.done()
        finally:
            del store.append
        wait_until(lambda: httpx.get(f"{gw.url}/readyz").status_code == 200, message="audit did not recover")
        r = httpx.post(
            f"{gw.url}/admin/approvals/{approval_id}/approve", json={"comment": "ok"}, headers=APPROVER
        )
        assert r.status_code == 200, r.text
        answer = held.result(timeout=30)
    assert answer.choices[0].message.tool_calls[0].function.name == "transfer_funds"
    events = httpx.get(
        f"{gw.url}/admin/audit",
        params={"kind": "approval", "limit": 100},
        headers={"authorization": f"Bearer {AUDITOR_KEY}"},
    ).json()["data"]
    decisions = [(e.get("data") or e).get("event") for e in events]
    assert decisions.count("approved") == 1 and "denied" not in decisions
