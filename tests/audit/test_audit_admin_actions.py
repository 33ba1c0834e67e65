"""Admin actions (budget and limit changes) leave an audit event naming who made them."""

from __future__ import annotations

import httpx

from tests.harness import ADMIN_KEY, AUDITOR_KEY, PASS_THROUGH, gateway_settings, running_gateway


def test_budget_change_through_the_admin_api_is_audited_with_the_admin(
    tmp_path, upstream, redis_url, key_prefix
):
    settings = gateway_settings(
        tmp_path,
        upstream.base_url,
        **{
            **PASS_THROUGH,
            "limits": {"enabled": True, "backend": "redis", "redis_url": redis_url, "key_prefix": key_prefix},
            "audit": {"enabled": True, "backend": "sqlite"},
        },
    )
    with running_gateway(settings) as gw:
        resp = httpx.put(
            gw.url + "/admin/budgets/team/test",
            json={"day": 3.5},
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
        )
        assert resp.status_code == 200, resp.text
        denied = httpx.put(
            gw.url + "/admin/budgets/team/test",
            json={"day": 99},
            headers={"authorization": f"Bearer {AUDITOR_KEY}"},
        )
        assert denied.status_code == 403
        events = httpx.get(
            gw.url + "/admin/audit",
            params={"kind": "admin"},
            headers={"authorization": f"Bearer {AUDITOR_KEY}"},
        ).json()["data"]
    assert len(events) == 1
    text = str(events[0])
    assert "budgets.set" in text and "root-admin" in text
    assert ADMIN_KEY not in text
