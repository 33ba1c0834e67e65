"""``/admin/spend/report`` moved next to ``/admin/spend`` (limits API) and answers as before.

The report reads the audit log, so with the audit log off it is 503 even though the limits
API serves it, and the admin key is checked first, as on every admin route: an
unauthenticated caller learns nothing about what is enabled.
"""

from __future__ import annotations

import httpx

from tests.harness import AUDITOR_KEY, TEST_KEY, RunningGateway


def test_without_an_admin_key_it_is_401_before_anything_else(gateway: RunningGateway) -> None:
    for headers in ({}, {"authorization": f"Bearer {TEST_KEY}"}):  # an agent key is no admin key
        r = httpx.get(gateway.url + "/admin/spend/report", headers=headers)
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"


def test_with_the_audit_log_off_it_is_503_naming_the_audit_log(gateway: RunningGateway) -> None:
    r = httpx.get(gateway.url + "/admin/spend/report", headers={"authorization": f"Bearer {AUDITOR_KEY}"})
    assert r.status_code == 503
    assert r.json()["error"]["message"] == "The audit log is disabled on this gateway."


def test_spend_itself_is_still_404_when_limits_are_off(gateway: RunningGateway) -> None:
    r = httpx.get(gateway.url + "/admin/spend", headers={"authorization": f"Bearer {AUDITOR_KEY}"})
    assert r.status_code == 404 and "limits.enabled" in r.json()["error"]["message"]
