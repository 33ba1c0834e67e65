"""The admin API, the caller's status endpoint, the SSE stream and the CLI, over real HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import orjson
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Route
from typer.testing import CliRunner

from gateway.approvals.api import openapi_paths, routes
from gateway.approvals.cli import app as cli_app
from gateway.errors import GatewayError
from gateway.http.routes import gateway_error_handler
from gateway.keys.store import AdminPrincipal, KeyStore, hash_key
from tests.approvals.conftest import AGENT, OTHER_AGENT, new_approval
from tests.waiting import FakeClock, wait_until_async

AGENT_KEY = "wg-agent-key-for-approvals-tests-0000"
OTHER_KEY = "wg-other-key-for-approvals-tests-0000"
FIN_KEY = "wg-admin-fin-approver-0000000000000000"
FIN2_KEY = "wg-admin-fin2-approver-000000000000000"
SUP_KEY = "wg-admin-support-approver-000000000000"
AUDIT_KEY = "wg-admin-auditor-000000000000000000000"
ALICE_KEY = "wg-admin-alice-same-person-as-agent-00"

KEYS = KeyStore(
    {hash_key(AGENT_KEY): AGENT, hash_key(OTHER_KEY): OTHER_AGENT},
    {
        hash_key(FIN_KEY): AdminPrincipal("fin-1", "carol", frozenset({"approver"}), frozenset({"finance"})),
        hash_key(FIN2_KEY): AdminPrincipal("fin-2", "dave", frozenset({"approver"}), frozenset({"finance"})),
        hash_key(SUP_KEY): AdminPrincipal("sup-1", "erin", frozenset({"approver"}), frozenset({"support"})),
        hash_key(AUDIT_KEY): AdminPrincipal("aud-1", "frank", frozenset({"auditor"})),
        hash_key(ALICE_KEY): AdminPrincipal("alice-admin", "alice", frozenset({"admin"}), frozenset({"*"})),
    },
)


class Api:
    def __init__(self, url: str, service: Any, session: aiohttp.ClientSession, clock: FakeClock) -> None:
        self.url = url
        self.service = service
        self.session = session
        self.clock = clock

    async def call(self, method: str, path: str, key: str | None, json: Any = None) -> tuple[int, Any]:
        headers = {"authorization": f"Bearer {key}"} if key else {}
        async with self.session.request(method, self.url + path, headers=headers, json=json) as resp:
            return resp.status, await resp.json(content_type=None)


@pytest.fixture
async def api(make_service) -> AsyncIterator[Api]:
    clock = FakeClock()
    service = await make_service("memory", clock=clock)
    app = Starlette(routes=routes(lambda: service), exception_handlers={GatewayError: gateway_error_handler})
    app.state.ctx = SimpleNamespace(keys=KEYS)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    await wait_until_async(lambda: server.started)
    async with aiohttp.ClientSession() as session:
        yield Api(f"http://127.0.0.1:{sock.getsockname()[1]}", service, session, clock)
    server.should_exit = True
    await task
    sock.close()


async def test_reviewers_list_and_read_approvals_and_others_cannot(api: Api) -> None:
    approval = await new_approval(api.service)
    status, page = await api.call("GET", "/admin/approvals?status=pending&limit=10", FIN_KEY)
    assert status == 200 and [a["id"] for a in page["data"]] == [approval.id] and page["next_cursor"] is None
    status, one = await api.call("GET", f"/admin/approvals/{approval.id}", AUDIT_KEY)
    assert status == 200 and one["tool_calls"][0]["arguments"] == {"amount": 5000, "to": "ACME"}
    assert (await api.call("GET", "/admin/approvals", None))[0] == 401
    assert (await api.call("GET", "/admin/approvals", AGENT_KEY))[0] == 401  # agent keys are not admin keys
    assert (await api.call("GET", "/admin/approvals?status=bogus", FIN_KEY))[0] == 400
    assert (await api.call("GET", "/admin/approvals?limit=0", FIN_KEY))[0] == 400
    status, body = await api.call("GET", "/admin/approvals/apr_" + "0" * 24, FIN_KEY)
    assert status == 404 and body["error"]["code"] == "approval_not_found"


async def test_approve_and_deny_over_http_with_every_refusal(api: Api) -> None:
    approval = await new_approval(api.service)
    path = f"/admin/approvals/{approval.id}"
    status, body = await api.call("POST", path + "/approve", AUDIT_KEY, {"comment": "x"})
    assert status == 403  # auditors read, they do not decide
    status, body = await api.call("POST", path + "/approve", SUP_KEY, {"comment": "x"})
    assert status == 403 and body["error"]["code"] == "approver_group_required"
    status, body = await api.call("POST", path + "/approve", ALICE_KEY, {"comment": "mine"})
    assert status == 403 and body["error"]["code"] == "self_approval_forbidden"
    status, body = await api.call("POST", path + "/deny", ALICE_KEY, {"comment": "mine"})
    assert status == 403 and body["error"]["code"] == "self_approval_forbidden"
    status, body = await api.call("POST", path + "/approve", FIN_KEY, {"comment": 5})
    assert status == 400
    status, body = await api.call("POST", path + "/approve", FIN_KEY, {"comment": "looks right"})
    assert status == 200 and body["status"] == "approved" and body["decided_by"] == "carol"
    assert body["comment"] == "looks right"
    status, body = await api.call("POST", path + "/deny", FIN2_KEY, {"comment": "late"})
    assert status == 409 and body["error"]["code"] == "already_decided"
    status, body = await api.call("POST", "/admin/approvals/apr_" + "1" * 24 + "/deny", FIN_KEY, {})
    assert status == 404
    expired = await new_approval(api.service, ttl_s=30)
    api.clock.advance(30)
    status, body = await api.call("POST", f"/admin/approvals/{expired.id}/approve", FIN_KEY, None)
    assert status == 409 and body["error"]["code"] == "approval_expired"


async def test_concurrent_approve_and_deny_over_http_one_gets_409(api: Api) -> None:
    for _ in range(10):
        approval = await new_approval(api.service)
        path = f"/admin/approvals/{approval.id}"
        results = await asyncio.gather(
            api.call("POST", path + "/approve", FIN_KEY, {}), api.call("POST", path + "/deny", FIN2_KEY, {})
        )
        statuses = sorted(s for s, _ in results)
        assert statuses == [200, 409]
        loser = next(b for s, b in results if s == 409)
        assert loser["error"]["code"] == "already_decided"


async def test_sse_stream_sends_pending_then_new_and_changed_approvals(api: Api) -> None:
    before = await new_approval(api.service)
    headers = {"authorization": f"Bearer {FIN_KEY}"}
    async with api.session.get(api.url + "/admin/approvals/stream", headers=headers) as resp:
        assert resp.status == 200 and resp.headers["content-type"].startswith("text/event-stream")
        events: list[tuple[str, dict[str, Any]]] = []

        async def read(n: int) -> None:
            name = None
            async for raw in resp.content:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name or "", orjson.loads(line[6:])))
                    if len(events) >= n:
                        return

        await asyncio.wait_for(read(1), 3)
        assert events[0] == ("approval.snapshot", before.public())
        created = await new_approval(api.service)
        await api.service.approve(created.id, KEYS.authenticate_admin(FIN_KEY), "ok")
        await asyncio.wait_for(read(3), 3)
    assert [(n, e["id"], e["status"]) for n, e in events[1:]] == [
        ("approval.created", created.id, "pending"),
        ("approval.updated", created.id, "approved"),
    ]


async def test_caller_polls_only_its_own_approval_and_may_withdraw_it(api: Api) -> None:
    approval = await new_approval(api.service)
    status, body = await api.call("GET", f"/v1/approvals/{approval.id}", AGENT_KEY)
    assert status == 200 and body["status"] == "pending" and body["tools"] == ["transfer_funds"]
    assert "principal" not in body and "votes" not in body
    assert (await api.call("GET", f"/v1/approvals/{approval.id}", OTHER_KEY))[0] == 404
    assert (await api.call("GET", f"/v1/approvals/{approval.id}", FIN_KEY))[0] == 401
    assert (await api.call("DELETE", f"/v1/approvals/{approval.id}", OTHER_KEY))[0] == 404
    status, body = await api.call("DELETE", f"/v1/approvals/{approval.id}", AGENT_KEY)
    assert status == 200 and body["status"] == "cancelled"
    status, body = await api.call("POST", f"/admin/approvals/{approval.id}/approve", FIN_KEY, {})
    assert status == 409 and body["error"]["code"] == "already_decided"


async def test_cli_lists_shows_approves_and_denies(api: Api) -> None:
    a = await new_approval(api.service)
    b = await new_approval(api.service)
    runner = CliRunner()
    env = {"WARDGATE_URL": api.url, "WARDGATE_ADMIN_KEY": FIN_KEY, "COLUMNS": "250"}

    def run(*args: str) -> Any:
        return runner.invoke(cli_app, list(args), env=env)

    listed = await asyncio.to_thread(run, "list", "--status", "pending")
    assert listed.exit_code == 0, listed.output
    assert a.id in listed.output and b.id in listed.output and "transfer_funds" in listed.output
    shown = await asyncio.to_thread(run, "show", a.id)
    assert shown.exit_code == 0 and '"amount": 5000' in shown.output
    approved = await asyncio.to_thread(run, "approve", a.id, "-m", "ok by me")
    assert approved.exit_code == 0 and "approved" in approved.output
    denied = await asyncio.to_thread(run, "deny", b.id, "--comment", "no")
    assert denied.exit_code == 0 and "denied" in denied.output
    again = await asyncio.to_thread(run, "deny", b.id)
    assert again.exit_code == 1 and "already_decided" in again.output
    with contextlib.suppress(KeyError):
        env.pop("WARDGATE_ADMIN_KEY")
    assert (await asyncio.to_thread(run, "list")).exit_code != 0


def test_every_route_is_described_for_openapi() -> None:
    described = openapi_paths()
    for route in routes(lambda: None):
        assert isinstance(route, Route)
        for method in route.methods - {"HEAD"}:
            assert method.lower() in described[route.path], (route.path, method)
