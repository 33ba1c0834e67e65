"""The session memo (``sessions._checked``, remembered per key digest) against revocation, end
to end: a key whose session was checked (so the worker remembers it) and is then revoked
through the admin API is refused at once with its own session id, and a new key of the same
team cannot pick that session up."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.harness import ADMIN_KEY, PASS_THROUGH
from tests.mcp.conftest import mcp_yaml, start_gateway
from tests.mcp.mcp_server import ToolServer
from tests.mcp.test_mcp_relay import _headers, _initialize, _ping

ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture(scope="module")
def gateway(tool_server: tuple[ToolServer, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    _, url = tool_server
    with start_gateway(tmp_path_factory.mktemp("mcp-memo"), mcp_yaml(url), **PASS_THROUGH) as gw:
        yield gw


def _new_key(gw: Any, id_: str) -> str:
    resp = httpx.post(gw.url + "/admin/keys", json={"team": "memo", "id": id_}, headers=ADMIN, timeout=30)
    assert resp.status_code in (200, 201), resp.text
    key: str = resp.json()["key"]
    return key


def test_a_remembered_session_dies_with_its_revoked_key(gateway: Any) -> None:
    url = gateway.url + "/mcp/payments"
    key = _new_key(gateway, "memo-a")
    with httpx.Client(timeout=30) as http:
        init = http.post(url, headers=_headers(key), json=_initialize())
        assert init.status_code == 200, init.text
        session = init.headers["mcp-session-id"]
        for n in range(2):  # handed out, then checked: the worker remembers it
            ok = http.post(url, headers=_headers(key, session), json=_ping(2 + n))
            assert ok.status_code == 200, ok.text
        revoked = http.delete(gateway.url + "/admin/keys/memo-a", headers=ADMIN)
        assert revoked.status_code == 200, revoked.text
        after = http.post(url, headers=_headers(key, session), json=_ping(9))
        assert after.status_code == 401, after.text
        assert "Invalid API key" in after.json()["error"]["message"]
        successor = _new_key(gateway, "memo-b")  # same team, a fresh key: not the same session
        taken = http.post(url, headers=_headers(successor, session), json=_ping(10))
        assert taken.status_code == 404, taken.text
