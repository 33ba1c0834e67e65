"""Admin API of virtual keys: create / list / get / revoke over real HTTP, keys.yaml as the truth.

Two gateways sharing one ``policies/`` directory stand in for two workers: a key created or
revoked through one must work or stop on the other within the reload bound.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest
import yaml

from gateway.keys.reload import RELOAD_INTERVAL_S
from tests.harness import (
    ADMIN_KEY,
    APPROVER_KEY,
    AUDITOR_KEY,
    PASS_THROUGH,
    REPO,
    TEST_KEY,
    RunningGateway,
    gateway_settings,
    running_gateway,
)

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
AUDITOR = {"authorization": f"Bearer {AUDITOR_KEY}"}
#: Reload interval plus generous slack for a loaded 2-vCPU machine.
BOUND_S = RELOAD_INTERVAL_S + 2.0


@pytest.fixture(scope="module")
def workers(
    fake_upstream: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningGateway, RunningGateway]]:
    root: Path = tmp_path_factory.mktemp("keys-api")
    settings = gateway_settings(root, fake_upstream.base_url, **PASS_THROUGH)  # type: ignore[attr-defined]
    with running_gateway(settings) as a, running_gateway(settings) as b:
        yield a, b


def _keys_file(gw: RunningGateway) -> Path:
    return gw.ctx.settings.policies_dir / "keys.yaml"


def _create(gw: RunningGateway, headers: dict[str, str] = ADMIN, **body: object) -> httpx.Response:
    return httpx.post(gw.url + "/admin/keys", json=body, headers=headers, timeout=30)


def _chat_status(gw: RunningGateway, key: str) -> int:
    resp = httpx.post(
        gw.base_url + "/chat/completions",
        headers={"authorization": f"Bearer {key}"},
        json={"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]},
        timeout=30,
    )
    return resp.status_code


def _eventually(check: Callable[[], bool], within_s: float) -> float:
    """Seconds until ``check`` held; fails after ``within_s``."""
    t0 = time.monotonic()
    while not check():
        assert time.monotonic() - t0 < within_s, f"not within {within_s} s"
        time.sleep(0.05)
    return time.monotonic() - t0


def _error(resp: httpx.Response, status: int, code: str | None = None, param: str | None = None) -> dict:
    assert resp.status_code == status, resp.text
    err = resp.json()["error"]
    assert set(err) >= {"message", "type", "code", "param"} and err["message"]
    if code is not None:
        assert err["code"] == code, err
    if param is not None:
        assert err["param"] == param, err
    return err


def test_created_key_works_with_the_openai_sdk_on_every_worker(workers):
    a, b = workers
    resp = _create(
        a,
        team="sdk",
        user="alice",
        models=["mock-*"],
        roles=["developer"],
        tags={"env": "ci"},
        limits={"requests_per_minute": 100},
        budgets={"day": 5},
    )
    assert resp.status_code == 201, resp.text
    assert resp.headers["cache-control"] == "no-store"
    created = resp.json()
    key = created["key"]
    assert key.startswith("wg-")
    assert created["team"] == "sdk" and created["user"] == "alice" and created["models"] == ["mock-*"]
    assert (
        created["source"] == "api" and created["created_by"] == "root-admin" and created["disabled"] is False
    )
    assert "sha256" not in created
    answer = openai.OpenAI(base_url=a.base_url, api_key=key, max_retries=0).chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "hello"}]
    )
    assert answer.choices[0].message.content
    _eventually(lambda: _chat_status(b, key) == 200, BOUND_S)
    with pytest.raises(openai.PermissionDeniedError):  # the model allow-list of the new key applies
        openai.OpenAI(base_url=a.base_url, api_key=key, max_retries=0).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hello"}]
        )
    text = _keys_file(a).read_text()
    assert key not in text and hashlib.sha256(key.encode()).hexdigest() in text


def test_list_and_get_never_show_secrets_and_filter_by_team(workers):
    a, _ = workers
    key = _create(a, team="listing", id="listing-one").json()["key"]
    everything = httpx.get(a.url + "/admin/keys", headers=AUDITOR).json()
    assert everything["object"] == "list"
    ids = {r["id"] for r in everything["data"]}
    assert {"test", "limited", "other", "listing-one"} <= ids
    assert "admin" not in ids  # admin keys are not virtual keys
    body = str(everything)
    assert key not in body and "sha256" not in body
    assert hashlib.sha256(key.encode()).hexdigest() not in body
    team = httpx.get(a.url + "/admin/keys", params={"team": "listing"}, headers=AUDITOR).json()["data"]
    assert [r["id"] for r in team] == ["listing-one"]
    one = httpx.get(a.url + "/admin/keys/listing-one", headers=ADMIN).json()
    assert one["id"] == "listing-one" and one["team"] == "listing" and "key" not in one
    assert httpx.get(a.url + "/admin/keys/test", headers=ADMIN).json()["source"] == "file"
    _error(httpx.get(a.url + "/admin/keys/nope", headers=ADMIN), 404, "key_not_found")


def test_revoked_key_stops_on_every_worker_within_the_bound(workers):
    a, b = workers
    key = _create(a, team="revoke", id="revoke-me").json()["key"]
    _eventually(lambda: _chat_status(b, key) == 200, BOUND_S)
    resp = httpx.delete(a.url + "/admin/keys/revoke-me", headers=ADMIN)
    assert resp.status_code == 200, resp.text
    assert resp.json()["disabled"] is True and resp.json()["revoked_by"] == "root-admin"
    assert _chat_status(a, key) == 401  # the worker that served the revocation: at once
    took = _eventually(lambda: _chat_status(b, key) == 401, BOUND_S)
    assert took <= BOUND_S
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=b.base_url, api_key=key, max_retries=0).models.list()
    assert httpx.get(b.url + "/admin/keys/revoke-me", headers=AUDITOR).json()["disabled"] is True
    again = httpx.delete(a.url + "/admin/keys/revoke-me", headers=ADMIN)
    assert again.status_code == 200 and again.json()["disabled"] is True  # idempotent
    _error(_create(a, team="revoke", id="revoke-me"), 409, "key_exists", "id")  # ids are not reused
    assert _chat_status(a, TEST_KEY) == 200  # other keys unaffected


def test_roles_are_enforced_and_agent_keys_never_reach_admin(workers):
    a, _ = workers
    for key in (APPROVER_KEY, AUDITOR_KEY):
        _error(_create(a, {"authorization": f"Bearer {key}"}, team="x"), 403, "permission_denied")
        _error(httpx.delete(a.url + "/admin/keys/test", headers={"authorization": f"Bearer {key}"}), 403)
    _error(httpx.get(a.url + "/admin/keys", headers={"authorization": f"Bearer {APPROVER_KEY}"}), 403)
    for headers in ({"authorization": f"Bearer {TEST_KEY}"}, {}):
        _error(_create(a, headers, team="x"), 401, "invalid_api_key")
        _error(httpx.get(a.url + "/admin/keys", headers=headers), 401, "invalid_api_key")
    err = _error(httpx.delete(a.url + "/admin/keys/admin", headers=ADMIN), 403, "admin_key_not_allowed")
    assert "keys.yaml" in err["message"]
    err = _error(_create(a, team="x", roles=["approver"]), 400, "admin_key_not_allowed", "roles")
    assert "by hand" in err["message"]
    _error(_create(a, team="x", id="admin"), 409, "key_exists", "id")


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({}, "team"),
        ({"team": ""}, "team"),
        ({"team": "t", "models": "gpt-*"}, "models"),
        ({"team": "t", "models": [1]}, "models"),
        ({"team": "t", "id": "has space"}, "id"),
        ({"team": "t", "limits": {"rpm": 5}}, "limits"),
        ({"team": "t", "limits": {"requests_per_minute": -1}}, "limits.requests_per_minute"),
        ({"team": "t", "budgets": {"day": "lots"}}, "budgets.day"),
        ({"team": "t", "tags": ["a"]}, "tags"),
        ({"team": "t", "sha256": "0" * 64}, "sha256"),
    ],
)
def test_invalid_bodies_are_openai_shaped_400s_naming_the_field(workers, body, param):
    a, _ = workers
    _error(_create(a, **body), 400, param=param)


def test_invalid_json_is_a_400(workers):
    a, _ = workers
    resp = httpx.post(a.url + "/admin/keys", content=b"{nope", headers=ADMIN)
    _error(resp, 400, "invalid_json")


def test_concurrent_creates_through_two_workers_lose_no_entry(workers):
    a, b = workers
    ids = [f"conc-{i}" for i in range(24)]
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: _create((a, b)[i % 2], team="conc", id=ids[i]), range(len(ids))))
    assert all(r.status_code == 201 for r in results), [r.text for r in results if r.status_code != 201]
    entries = yaml.safe_load(_keys_file(a).read_text())["keys"]
    assert set(ids) <= {e["id"] for e in entries}
    assert {"test", "limited", "other"} <= {e["id"] for e in entries}  # the hand-written ones too
    for gw in (a, b):
        _eventually(
            lambda gw=gw: (
                set(ids)
                <= {
                    r["id"]
                    for r in httpx.get(gw.url + "/admin/keys", params={"team": "conc"}, headers=ADMIN).json()[
                        "data"
                    ]
                }
            ),
            BOUND_S,
        )
    for r in results:
        assert r.json()["key"] not in _keys_file(a).read_text()


def test_openapi_document_lists_the_keys_api(workers):
    a, _ = workers
    paths = httpx.get(a.url + "/openapi.json").json()["paths"]
    assert set(paths["/admin/keys"]) == {"get", "post"}
    assert set(paths["/admin/keys/{key_id}"]) == {"get", "delete"}
    assert "201" in paths["/admin/keys"]["post"]["responses"]


def test_a_malformed_hand_edit_keeps_the_last_good_keys_and_shows_in_readyz(tmp_path, upstream):
    settings = gateway_settings(tmp_path, upstream.base_url, **PASS_THROUGH)
    with running_gateway(settings) as gw:
        path = _keys_file(gw)
        good = path.read_text()
        key = _create(gw, team="edit").json()["key"]
        path.write_text(good.replace("keys:", "keys: [", 1))  # broken YAML, by hand
        _eventually(
            lambda: httpx.get(gw.url + "/readyz").json()["checks"]["keys"].startswith("degraded"), BOUND_S
        )
        ready = httpx.get(gw.url + "/readyz")
        assert ready.status_code == 200 and "keys.yaml" in ready.json()["checks"]["keys"]
        assert _chat_status(gw, key) == 200 and _chat_status(gw, TEST_KEY) == 200  # last good keys
        _error(_create(gw, team="edit"), 503, "keys_file_invalid")  # no edit builds on a broken file
        path.write_text(good)  # fixed: the file is the truth again (the API-made key was not in it)
        _eventually(lambda: httpx.get(gw.url + "/readyz").json()["checks"]["keys"] == "ok", BOUND_S)
        _eventually(lambda: _chat_status(gw, key) == 401, BOUND_S)
        assert _chat_status(gw, TEST_KEY) == 200


def test_cli_created_key_is_picked_up_by_a_running_gateway(tmp_path, upstream):
    settings = gateway_settings(tmp_path, upstream.base_url, **PASS_THROUGH)
    with running_gateway(settings) as gw:
        path = _keys_file(gw)
        path.write_text("# Virtual keys, by hand\n\n" + path.read_text())
        out = subprocess.run(
            [sys.executable, "-m", "gateway", "keys", "create", "--team", "cli", "--file", str(path)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        ).stdout
        key = out.strip().splitlines()[-1]
        _eventually(lambda: _chat_status(gw, key) == 200, BOUND_S)
        assert path.read_text().startswith("# Virtual keys, by hand\n\n")  # the header comment is kept
        records = httpx.get(gw.url + "/admin/keys", params={"team": "cli"}, headers=ADMIN).json()["data"]
        assert [r["source"] for r in records] == ["cli"]


def test_creation_and_revocation_are_audited_without_secrets(tmp_path, upstream):
    settings = gateway_settings(tmp_path, upstream.base_url, **{**PASS_THROUGH, "audit": {"enabled": True}})
    with running_gateway(settings) as gw:
        key = _create(gw, team="aud", id="aud-1").json()["key"]
        assert httpx.delete(gw.url + "/admin/keys/aud-1", headers=ADMIN).status_code == 200
        events = httpx.get(gw.url + "/admin/audit", params={"kind": "admin"}, headers=AUDITOR).json()["data"]
    text = str(events)
    assert "keys.create" in text and "keys.revoke" in text and "root-admin" in text and "aud-1" in text
    assert key not in text and hashlib.sha256(key.encode()).hexdigest() not in text
