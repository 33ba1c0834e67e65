"""``POST /admin/audit/verify``: verify from the admin API, as an audited read, one at a time.

A real gateway over HTTP (SQLite store, a signing key, anchors to a directory every 0.2 s);
calls made with the openai SDK; the store tampered with directly at the end.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator

import httpx
import openai
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.audit.signing import private_pem, public_hex
from gateway.audit.verify_api import Verifier
from gateway.errors import RateLimited
from tests.harness import (
    ADMIN_KEY,
    APPROVER_KEY,
    AUDITOR_KEY,
    PASS_THROUGH,
    TEST_KEY,
    RunningGateway,
    gateway_settings,
    running_gateway,
)

AUTH = {"authorization": f"Bearer {AUDITOR_KEY}"}
KEY = Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def gw(fake_upstream, tmp_path_factory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("audit-verify-api")
    keyfile = root / "anchor-key.pem"
    keyfile.write_bytes(private_pem(KEY))
    anchors = root / "anchors"
    audit = {
        "enabled": True,
        "backend": "sqlite",
        "signing_key_file": str(keyfile),
        "anchor_to": f"{anchors}/",
        "anchor_interval_s": 0.2,
    }
    settings = gateway_settings(root, fake_upstream.base_url, **{**PASS_THROUGH, "audit": audit})
    with running_gateway(settings) as running:
        client = openai.OpenAI(base_url=running.base_url, api_key=TEST_KEY, max_retries=0)
        for _ in range(3):
            client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
        deadline = time.monotonic() + 10
        while len(list(anchors.glob("anchor-*.json"))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        running.audit_db = root / "data" / "audit.db"  # type: ignore[attr-defined]
        yield running


def _verify(gw: RunningGateway, key: str = AUDITOR_KEY, **params: str) -> httpx.Response:
    return httpx.post(
        f"{gw.url}/admin/audit/verify", params=params, headers={"authorization": f"Bearer {key}"}, timeout=30
    )


def test_an_auditor_verifies_every_chain_against_the_anchors_and_the_read_is_recorded(gw):
    r = _verify(gw)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "audit.verification" and body["ok"] is True, body
    assert body["anchors"] is True and body["public_key"] == public_hex(KEY)
    assert body["events"] >= 4 and body["breaks"] == []
    assert any(s["anchored_to"] for s in body["shards"])  # held to a signed anchor

    listed = httpx.get(f"{gw.url}/admin/audit", params={"kind": "audit_read", "limit": 1000}, headers=AUTH)
    reads = [e for e in listed.json()["data"] if e["data"]["path"] == "/admin/audit/verify"]
    assert reads, listed.text
    assert reads[0]["data"]["rows"] == body["events"]
    assert reads[0]["data"]["method"] == "POST"
    assert reads[0]["data"]["reader"]["roles"] == ["auditor"]


def test_one_chain_without_anchors_and_an_admin_may_verify_too(gw):
    chains = _verify(gw, anchors="false").json()["shards"]
    one = chains[0]["shard"]
    r = _verify(gw, ADMIN_KEY, chain=one, anchors="false")
    assert r.status_code == 200, r.text
    assert [s["shard"] for s in r.json()["shards"]] == [one] and r.json()["anchors"] is False


@pytest.mark.parametrize(
    ("params", "key", "status", "param"),
    [
        ({}, APPROVER_KEY, 403, None),
        ({}, TEST_KEY, 401, None),
        ({}, "not-a-key", 401, None),
        ({"chain": "no-such-chain"}, AUDITOR_KEY, 404, "chain"),
        ({"anchors": "maybe"}, AUDITOR_KEY, 400, "anchors"),
        ({"public_key": "zz"}, AUDITOR_KEY, 400, "public_key"),
        ({"limit": "3"}, AUDITOR_KEY, 400, "limit"),
    ],
)
def test_refusals_are_openai_shaped(gw, params, key, status, param):
    r = _verify(gw, key, **params)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["message"] and error["type"]
    if param is not None:
        assert error["param"] == param


async def test_a_second_verification_while_one_runs_is_refused_at_once():
    verifier = Verifier(lambda: None, lambda: None)
    verifier.busy = True
    with pytest.raises(Exception) as caught:  # the disabled log is checked first...
        await verifier.run(None, False, None)
    assert caught.value.status == 503  # type: ignore[attr-defined]

    class Running:  # ...then, on a working log, the gate
        settings = type("S", (), {"anchor_to": None})()
        signing_key = None
        store = type("St", (), {"queryable": True})()

    verifier = Verifier(lambda: Running(), lambda: "/nonexistent")  # type: ignore[arg-type, return-value]
    verifier.busy = True
    with pytest.raises(RateLimited, match="already running"):
        await verifier.run(None, False, None)


def test_another_key_and_a_tampered_store_fail_verification(gw):
    other = public_hex(Ed25519PrivateKey.generate())
    forged = _verify(gw, public_key=other).json()
    assert forged["ok"] is False and any("not validly signed" in b["problem"] for b in forged["breaks"])

    db = sqlite3.connect(gw.audit_db)  # type: ignore[attr-defined]
    with db:
        db.execute("UPDATE audit_events SET body = replace(body, 'gpt-test', 'gpt-evil') WHERE kind = 'call'")
    db.close()
    broken = _verify(gw).json()
    assert broken["ok"] is False and broken["breaks"], broken
