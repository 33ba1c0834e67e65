"""The console over plain HTTP (no browser): sign-in, the session cookie, headers, CSRF, roles,
bad input. The browser tests (test_console_*_browser.py) drive the same pages in Chromium."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx

from gateway.console.security import CSP
from gateway.keys.store import hash_key
from tests.harness import ADMIN_KEY, APPROVER_KEY, AUDITOR_KEY, TEST_KEY, RunningGateway

REPO = Path(__file__).resolve().parents[2]


def test_sign_in_per_role_gives_a_server_side_session_cookie(
    console_gateway: RunningGateway, as_role
) -> None:
    for key, user in ((ADMIN_KEY, "root-admin"), (APPROVER_KEY, "reviewer"), (AUDITOR_KEY, "auditor")):
        client = as_role(None)
        done = client.sign_in(key)
        assert done.status_code == 303 and done.headers["location"] == "/console/"
        cookie = next(c for c in done.headers.get_list("set-cookie") if c.startswith("wardgate_console="))
        flags = {part.strip().lower() for part in cookie.split(";")}
        assert {"httponly", "samesite=strict", "path=/console"} <= flags
        assert "secure" not in flags  # plain HTTP here; Secure when the request came over TLS
        value = cookie.split(";")[0].split("=", 1)[1]
        assert key not in cookie and hash_key(key) not in cookie and len(value) >= 40
        home = client.get("/console/")
        assert home.status_code == 200 and f"Signed in as <strong>{user}</strong>" in home.text
    # the store holds the key's hash, never the key
    console = next(c for c in console_gateway.app.state.components if c.name == "console")
    stored = console.sessions.store._items.values()
    assert stored and all(ADMIN_KEY not in repr(s) for s, _ in stored)


def test_wrong_keys_are_refused_and_agent_keys_are_not_admin_keys(as_role) -> None:
    client = as_role(None)
    for key in ("wg-nope", TEST_KEY, ""):
        done = client.sign_in(key)
        assert done.status_code in (400, 401) and "wardgate_console=" not in done.headers.get(
            "set-cookie", ""
        )
    assert client.get("/console/").status_code == 303


def test_security_headers_on_pages_errors_and_static_files(as_role) -> None:
    client = as_role(ADMIN_KEY)
    for path in ("/console/", "/console/login", "/console/nope", "/console/static/console.js"):
        r = client.get(path)
        assert r.headers["content-security-policy"] == CSP, path
        assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP and "frame-ancestors 'none'" in CSP
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["referrer-policy"] == "same-origin"
    assert client.get("/console/").headers["cache-control"] == "no-store"
    assert "immutable" in client.get("/console/static/console.js").headers["cache-control"]


def test_pages_have_no_inline_script_or_style_and_htmx_carries_its_vendored_integrity(as_role) -> None:
    page = as_role(ADMIN_KEY).get("/console/").text
    assert not re.search(r"<script(?![^>]*\bsrc=)", page) and "<style" not in page and " style=" not in page
    assert not re.search(r"<[^>]+\son\w+=", page)  # no inline event handlers either
    vendored = (REPO / "gateway/console/VENDORED").read_text()
    sri = re.search(r"htmx\.min\.js\s+(sha384-\S+)", vendored)
    assert sri and f'integrity="{sri.group(1)}"' in page


def test_csrf_is_required_on_every_state_change(console_gateway: RunningGateway, as_role) -> None:
    client = as_role(ADMIN_KEY)
    for token in ("", "forged", client.csrf[:-1] + ("A" if client.csrf[-1] != "A" else "B")):
        r = client.post("/console/logout", csrf=token)
        assert r.status_code == 403 and "CSRF" in r.text and "Traceback" not in r.text
    # another origin is refused even with the right token
    r = client.http.post(
        "/console/logout", data={"csrf_token": client.csrf}, headers={"origin": "https://evil.example"}
    )
    assert r.status_code == 403
    assert client.get("/console/").status_code == 200  # still signed in
    # the sign-in form is bound to its own cookie
    fresh = httpx.post(console_gateway.url + "/console/login", data={"key": ADMIN_KEY, "csrf_token": "x"})
    assert fresh.status_code == 403 and "wardgate_console=" not in fresh.headers.get("set-cookie", "")


def test_logout_ends_the_session_server_side(as_role) -> None:
    client = as_role(APPROVER_KEY)
    cookie = client.http.cookies.get("wardgate_console", path="/console")
    assert client.post("/console/logout").status_code == 303
    replay = httpx.get(client.url + "/console/", cookies={"wardgate_console": cookie})
    assert replay.status_code == 303 and replay.headers["location"].startswith("/console/login")


def test_forged_or_missing_sessions_go_to_the_sign_in_page(console_gateway: RunningGateway) -> None:
    for cookies in ({}, {"wardgate_console": "forged"}, {"wardgate_console": "x" * 5000}):
        r = httpx.get(console_gateway.url + "/console/?team=a", cookies=cookies)
        assert r.status_code == 303
        assert r.headers["location"] == "/console/login?next=/console/%3Fteam%3Da"
    htmx = httpx.get(console_gateway.url + "/console/", headers={"hx-request": "true"})
    assert htmx.status_code == 401 and htmx.headers["hx-redirect"] == "/console/login"


def test_sign_in_goes_back_only_to_console_paths(console_gateway: RunningGateway) -> None:
    from gateway.console.signin import safe_next

    assert safe_next("/console/approvals?team=a") == "/console/approvals?team=a"
    for bad in ("https://evil.example/", "//evil.example", "/console\\..", "/elsewhere", "/console/login"):
        assert safe_next(bad) == "/console/"


def test_unknown_paths_answer_the_404_page_without_internals(as_role) -> None:
    client = as_role(AUDITOR_KEY)
    r = client.get("/console/no/such/page")
    assert r.status_code == 404 and "<h1>Not found" in r.text and "Traceback" not in r.text
    assert client.get("/console/static/../../settings.py").status_code == 404


def test_a_revoked_admin_key_ends_its_sessions(console_gateway: RunningGateway, as_role) -> None:
    client = as_role(AUDITOR_KEY)
    assert client.get("/console/").status_code == 200
    keys = console_gateway.ctx.keys
    digest = hash_key(AUDITOR_KEY)
    removed = keys._admin.pop(digest)
    try:
        assert client.get("/console/").status_code == 303
    finally:
        keys._admin[digest] = removed


def _session_manager(clock: Any) -> Any:
    from gateway.console.sessions import MemorySessionStore, SessionManager

    return SessionManager(MemorySessionStore(clock=clock), idle_s=60, absolute_s=300, clock=clock)


async def test_idle_and_absolute_expiry() -> None:
    from tests.waiting import FakeClock

    clock = FakeClock()
    sessions = _session_manager(clock)
    token, _ = await sessions.begin("admin_key", "h", "k", "u")
    clock.advance(59)
    assert await sessions.load(token) is not None  # used: the idle timer restarts
    clock.advance(59)
    assert await sessions.load(token) is not None
    clock.advance(61)
    assert await sessions.load(token) is None  # idle too long
    token, _ = await sessions.begin("admin_key", "h", "k", "u")
    for _ in range(6):
        clock.advance(50)
        found = await sessions.load(token)
    assert found is None  # busy, but past the absolute expiry


async def test_redis_sessions_are_shared_and_keep_no_key(redis_url: str, key_prefix: str) -> None:
    from gateway.console.redis_sessions import RedisSessionStore
    from gateway.console.sessions import SessionManager

    one = SessionManager(RedisSessionStore.from_url(redis_url, key_prefix), 60, 300)
    two = SessionManager(RedisSessionStore.from_url(redis_url, key_prefix), 60, 300)
    try:
        token, session = await one.begin("admin_key", hash_key(ADMIN_KEY), "admin", "root-admin")
        seen = await two.load(token)
        assert seen is not None and seen.csrf == session.csrf and seen.user == "root-admin"
        raw = await one.store._redis.get(one.store._prefix + session.id_hash)  # type: ignore[attr-defined]
        assert ADMIN_KEY.encode() not in raw and token.encode() not in raw
        await two.end(token)
        assert await one.load(token) is None
    finally:
        await one.store.close()
        await two.store.close()
