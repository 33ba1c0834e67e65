"""An admin change takes effect only if its audit event is stored.

The real gateway over HTTP, its audit log in SQLite and in PostgreSQL, limits in real Redis.
The audit store is made to refuse writes (its ``append`` fails, as a full disk or a lost
database would); every admin change then answers 503 ``audit_unavailable`` and leaves nothing
changed: budgets, limits, keys created and revoked, a reservation released, policy reloads
(an unchanged one included). Once the store is back, the same change is applied and recorded.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gateway.audit.component import Audit
from tests.audit.audit_helpers import PG_DSN, pg_execute
from tests.harness import (
    ADMIN_KEY,
    AUDITOR_KEY,
    PASS_THROUGH,
    TEST_KEY,
    RunningGateway,
    gateway_settings,
    running_gateway,
)
from tests.waiting import wait_until

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
AUDITOR = {"authorization": f"Bearer {AUDITOR_KEY}"}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(
    request: pytest.FixtureRequest, fake_upstream: Any, tmp_path_factory: Any, redis_url: str
) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("admin-audit")
    audit: dict[str, Any] = {"enabled": True, "backend": request.param}
    if request.param == "postgres":
        schema = f"wgtest_admin_audit_{uuid.uuid4().hex[:10]}"
        audit.update(postgres_dsn=PG_DSN, postgres_schema=schema)
    prefix = f"wgtest:{uuid.uuid4().hex[:12]}"
    settings = gateway_settings(
        root,
        fake_upstream.base_url,
        **{
            **PASS_THROUGH,
            "audit": audit,
            "policy": {"enabled": True, "watch": False},
            "limits": {"enabled": True, "backend": "redis", "redis_url": redis_url, "key_prefix": prefix},
        },
    )
    (settings.policies_dir / "limits.yaml").write_text("scopes:\n  key:\n    budget_usd: {total: 5}\n")
    with running_gateway(settings) as running:
        yield running
    if request.param == "postgres":
        pg_execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextlib.contextmanager
def audit_refuses(gw: RunningGateway) -> Iterator[None]:
    """The audit store refuses every write until the block ends; then the gateway is ready again."""
    store = gw.component(Audit).service.store

    async def broken(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("disk full")

    store.append = broken  # the store's own method, shadowed on the instance
    try:
        yield
    finally:
        del store.append
        wait_until(
            lambda: httpx.get(f"{gw.url}/readyz").status_code == 200, message="readiness did not recover"
        )


def _refused(r: httpx.Response, says: str = "Nothing was changed.") -> None:
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "audit_unavailable" and error["type"] and says in error["message"], error


def _admin_events(gw: RunningGateway, action: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{gw.url}/admin/audit", params={"kind": "admin", "limit": 1000}, headers=AUDITOR)
    assert r.status_code == 200, r.text
    return [e for e in r.json()["data"] if (e.get("data") or e).get("action") == action]


def _spend(gw: RunningGateway, scope: str = "key", ident: str = "test") -> dict[str, Any]:
    return httpx.get(f"{gw.url}/admin/spend", params={"scope": scope, "id": ident}, headers=AUDITOR).json()


def test_budget_and_limit_changes_the_audit_log_refuses_are_not_applied(gw: RunningGateway) -> None:
    before = _spend(gw)
    with audit_refuses(gw):
        _refused(httpx.put(f"{gw.url}/admin/budgets/key/test", json={"total": 0.000001}, headers=ADMIN))
        _refused(httpx.put(f"{gw.url}/admin/limits/key/test", json={"requests_per_minute": 0}, headers=ADMIN))
        during = _spend(gw)  # reads need no audit record
    assert during["override"] == before["override"] == {}
    assert during["windows"]["total"]["budget_usd"] == 5.0 and during["limits"]["requests_per_minute"] is None
    # The gateway still serves with the old budget and no rate limit.
    openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], max_tokens=5
    )
    r = httpx.put(f"{gw.url}/admin/budgets/key/test", json={"total": 4}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["windows"]["total"]["budget_usd"] == 4.0
    [event] = [
        e for e in _admin_events(gw, "budgets.set") if (e.get("data") or e).get("budgets") == {"total": 4}
    ]
    assert (event.get("data") or event)["previous"] == {}


def test_key_creation_and_revocation_the_audit_log_refuses_are_rolled_back(gw: RunningGateway) -> None:
    with audit_refuses(gw):
        _refused(
            httpx.post(
                f"{gw.url}/admin/keys", json={"team": "audit-atomic", "id": "never-made"}, headers=ADMIN
            )
        )
    assert httpx.get(f"{gw.url}/admin/keys/never-made", headers=AUDITOR).status_code == 404
    made = httpx.post(f"{gw.url}/admin/keys", json={"team": "audit-atomic", "id": "kept-key"}, headers=ADMIN)
    assert made.status_code == 201, made.text
    key = made.json()["key"]
    with audit_refuses(gw):
        _refused(httpx.delete(f"{gw.url}/admin/keys/kept-key", headers=ADMIN))
    assert httpx.get(f"{gw.url}/admin/keys/kept-key", headers=AUDITOR).json()["disabled"] is False
    openai.OpenAI(base_url=gw.base_url, api_key=key, max_retries=0).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "still works"}], max_tokens=5
    )
    assert httpx.delete(f"{gw.url}/admin/keys/kept-key", headers=ADMIN).status_code == 200
    assert _admin_events(gw, "keys.revoke") and not [
        e for e in _admin_events(gw, "keys.create") if (e.get("data") or e).get("id") == "never-made"
    ]


def test_a_reservation_release_the_audit_log_refuses_keeps_the_hold(
    gw: RunningGateway, upstream: Any
) -> None:
    upstream.fault("hang", times=1)
    caller = threading.Thread(target=_hanging_call, args=(gw.base_url,), daemon=True)
    caller.start()
    upstream.wait_for_requests(1)
    params = {"scope": "key", "id": "test"}
    [held] = httpx.get(f"{gw.url}/admin/reservations", params=params, headers=AUDITOR).json()["data"]
    with audit_refuses(gw):
        _refused(httpx.delete(f"{gw.url}/admin/reservations/{held['id']}", params=params, headers=ADMIN))
    assert [
        r["id"]
        for r in httpx.get(f"{gw.url}/admin/reservations", params=params, headers=AUDITOR).json()["data"]
    ] == [held["id"]]
    released = httpx.delete(f"{gw.url}/admin/reservations/{held['id']}", params=params, headers=ADMIN)
    assert released.status_code == 200 and released.json()["reserved_usd"] == held["reserved_usd"]
    assert httpx.get(f"{gw.url}/admin/reservations", params=params, headers=AUDITOR).json()["data"] == []
    assert _admin_events(gw, "reservations.release")


def _hanging_call(base_url: str) -> None:
    with contextlib.suppress(openai.APIError):
        openai.OpenAI(base_url=base_url, api_key=TEST_KEY, max_retries=0, timeout=3).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "wait"}], max_tokens=5
        )


def test_policy_reloads_the_audit_log_refuses_load_nothing(gw: RunningGateway) -> None:
    revision = httpx.get(f"{gw.url}/admin/policies", headers=AUDITOR).json()["revision"]
    with audit_refuses(gw):
        # unchanged, still an admin action
        _refused(httpx.post(f"{gw.url}/admin/policies/reload", headers=ADMIN), says="could not record")
        data = gw.ctx.settings.policies_dir / f"extra-{uuid.uuid4().hex[:6]}.yaml"
        data.write_text("flag: true\n")
        _refused(httpx.post(f"{gw.url}/admin/policies/reload", headers=ADMIN), says="could not record")
        status = httpx.get(f"{gw.url}/admin/policies", headers=AUDITOR).json()
    assert status["revision"] == revision and "not loaded" in str(status["last_error"]["errors"])
    loaded = httpx.post(f"{gw.url}/admin/policies/reload", headers=ADMIN).json()
    assert loaded["result"] == "loaded" and loaded["revision"] != revision
    assert httpx.post(f"{gw.url}/admin/policies/reload", headers=ADMIN).json()["result"] == "unchanged"
