"""Admin API (/admin/spend, PUT budgets and limits) and the ``wardgate spend`` CLI over real HTTP."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
from limits_helpers import TEAM, forwarded, make_call, make_service, settle
from starlette.applications import Starlette
from typer.testing import CliRunner

from gateway.call import Principal, Usage
from gateway.errors import GatewayError
from gateway.http.launch import serve_app
from gateway.http.routes import gateway_error_handler
from gateway.keys.store import AdminPrincipal, KeyStore
from gateway.limits import api, cli
from gateway.limits.admin import LimitsAdmin
from gateway.limits.memory import MemoryStore
from gateway.limits.service import LimitsService
from gateway.limits.stage import LimitStage
from gateway.limits.store import LimitStore
from tests.limits.limits_support import FakeClock

ADMIN, AUDITOR, APPROVER = "wg-admin-limits-test", "wg-auditor-limits-test", "wg-approver-limits-test"
LIMITS = {
    "scopes": {"team": {"budget_usd": {"day": 1.0, "month": 1.0}}, "key": {"requests_per_minute": 100}},
    "run_guards": {"max_calls": 50},
}


def _sha(k: str) -> str:
    return hashlib.sha256(k.encode()).hexdigest()


def _keys() -> KeyStore:
    principals = {_sha("wg-k1"): Principal(key_id="k1", team=TEAM, user="ann")}
    admins = {
        _sha(k): AdminPrincipal(key_id=role, user=role, roles=frozenset({role}))
        for k, role in ((ADMIN, "admin"), (AUDITOR, "auditor"), (APPROVER, "approver"))
    }
    return KeyStore(principals, admins)


class _Ctx:
    def __init__(self, service: LimitsService) -> None:
        self.keys = service.admin._keys  # type: ignore[union-attr]


async def _no_report(params: Any) -> None:
    return None  # the audit log is off here


def _app(service: LimitsService) -> Starlette:
    deps = api.Deps(lambda: service.admin, lambda: None, _no_report)
    app = Starlette(routes=api.routes(deps), exception_handlers={GatewayError: gateway_error_handler})
    app.state.ctx = _Ctx(service)
    return app


@pytest.fixture
async def service(store: LimitStore) -> LimitsService:
    service = make_service(store, LIMITS)
    service.admin = LimitsAdmin(service, _keys())
    return service


async def _spend(service: LimitsService, usd_in_tokens: int, clock: FakeClock, times: int = 1) -> None:
    for _ in range(times):
        # max_tokens makes the usage below plausible (usage far beyond the request's bound is not believed)
        body = {
            "model": "mock-chat",
            "messages": [{"role": "user", "content": "hello"}],
            "max_tokens": usd_in_tokens,
        }
        call = make_call(run_id="run-1", agent_id="agent-1", body=body)
        await LimitStage(service).on_request(call)
        await settle(service, forwarded(call, Usage(input_tokens=usd_in_tokens, output_tokens=0)))
        clock.advance(60)


def _client(service: LimitsService, key: str | None = ADMIN) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app(service)), base_url="http://gw", headers=headers
    )


async def test_spend_requires_an_admin_or_auditor_key(service: LimitsService) -> None:
    async with _client(service, None) as c:
        assert (await c.get("/admin/spend", params={"scope": "team", "id": TEAM})).status_code == 401
    async with _client(service, APPROVER) as c:
        assert (await c.get("/admin/spend", params={"scope": "team", "id": TEAM})).status_code == 403
    async with _client(service, AUDITOR) as c:
        assert (await c.get("/admin/spend", params={"scope": "team", "id": TEAM})).status_code == 200
        assert (await c.put(f"/admin/budgets/team/{TEAM}", json={"day": 1})).status_code == 403


async def test_spend_shows_spent_reserved_remaining_window_and_forecast(
    service: LimitsService, clock: FakeClock
) -> None:
    await _spend(service, 4000, clock, times=3)  # 3 × $0.01 within the last hour
    async with _client(service) as c:
        doc = (await c.get("/admin/spend", params={"scope": "team", "id": TEAM})).json()
    day, month = doc["windows"]["day"], doc["windows"]["month"]
    assert (day["spent_usd"], day["budget_usd"], day["remaining_usd"]) == (0.03, 1.0, 0.97)
    assert doc["reserved_usd"] == 0 and doc["burn_rate_usd_per_hour"] == 0.03
    assert day["start"] == "2026-01-01T00:00:00Z" and day["resets_at"] == "2026-01-02T00:00:00Z"
    assert day["forecast"] == "lasts until reset" and day["runs_out_at"] is None
    assert month["runs_out_at"].startswith("2026-01-02T") and month["forecast"] == "runs out in 32h20m"
    assert doc["windows"]["total"]["forecast"] == "no budget"
    assert doc["run_guards"]["max_calls"] == 50


async def test_put_budget_applies_at_once_and_persists_in_the_store(
    service: LimitsService, clock: FakeClock
) -> None:
    async with _client(service) as c:
        r = await c.put("/admin/budgets/key/k1", json={"day": 0.0001, "total": None})
        assert r.status_code == 200, r.text
        doc = r.json()
    assert doc["windows"]["day"]["budget_usd"] == 0.0001 and doc["override"]["budget_usd"] == {
        "day": 0.0001,
        "total": None,
    }
    with pytest.raises(GatewayError) as err:
        await LimitStage(service).on_request(make_call())
    assert err.value.code == "budget_exceeded"
    # Another gateway (another service over the same store) sees the override too.
    twin = make_service(service.store, LIMITS)
    with pytest.raises(GatewayError):
        await LimitStage(twin).on_request(make_call())


async def test_put_limits_sets_rate_limits_and_team_run_guards(service: LimitsService) -> None:
    async with _client(service) as c:
        r = await c.put(
            f"/admin/limits/team/{TEAM}",
            json={"requests_per_minute": 1, "run_max_calls": 7, "run_max_cost_usd": 0.5},
        )
        doc = r.json()
        assert doc["limits"]["requests_per_minute"] == 1
        assert doc["run_guards"] == {"max_calls": 7, "max_identical_requests": None, "max_cost_usd": 0.5}
        r = await c.put("/admin/limits/agent/agent-1", params={"team": TEAM}, json={"tokens_per_minute": 10})
        assert r.json()["limits"]["tokens_per_minute"] == 10
    await LimitStage(service).on_request(make_call())
    with pytest.raises(GatewayError) as err:
        await LimitStage(service).on_request(make_call())
    assert err.value.code == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("method", "path", "params", "body", "status"),
    [
        ("put", "/admin/budgets/team/acme", {}, {"week": 1}, 400),
        ("put", "/admin/budgets/team/acme", {}, {"day": -1}, 400),
        ("put", "/admin/limits/key/k1", {}, {"run_max_calls": 3}, 400),
        ("put", "/admin/limits/key/k1", {}, {"requests_per_minute": 1.5}, 400),
        ("put", "/admin/budgets/key/nope", {}, {"day": 1}, 404),
        ("put", "/admin/budgets/agent/a1", {}, {"day": 1}, 400),
        ("get", "/admin/spend", {"scope": "galaxy", "id": "x"}, None, 400),
        ("get", "/admin/spend", {"scope": "run"}, None, 400),
    ],
)
async def test_invalid_admin_requests_are_rejected_clearly(
    service: LimitsService, method: str, path: str, params: dict[str, Any], body: Any, status: int
) -> None:
    async with _client(service) as c:
        r = await c.request(method.upper(), path, params=params, json=body)
    assert r.status_code == status
    assert r.json()["error"]["message"]


async def test_spend_lists_teams_keys_and_active_runs(service: LimitsService, clock: FakeClock) -> None:
    await _spend(service, 1000, clock)
    async with _client(service) as c:
        teams = (await c.get("/admin/spend", params={"scope": "team"})).json()["data"]
        runs = (await c.get("/admin/spend", params={"scope": "run", "team": TEAM})).json()["data"]
        keys = (await c.get("/admin/spend", params={"scope": "key"})).json()["data"]
    assert [t["id"] for t in teams] == [TEAM]
    assert [(r["id"], r["calls"]) for r in runs] == [("run-1", 1)]
    assert [k["id"] for k in keys] == ["k1"]


async def test_spend_cli_prints_a_table_and_sets_budgets(clock: FakeClock) -> None:
    # The CLI talks HTTP to a server on its own thread and loop: a memory store has no loop affinity.
    service = make_service(MemoryStore(clock=clock), LIMITS)
    service.admin = LimitsAdmin(service, _keys())
    await _spend(service, 4000, clock)
    runner = CliRunner()
    with serve_app(_app(service), lifespan="off") as served:
        url = served.url
        env = {"WARDGATE_URL": url, "WARDGATE_ADMIN_KEY": ADMIN, "COLUMNS": "200"}
        shown = await _run(runner, ["--scope", "team"], env)
        assert shown.exit_code == 0, shown.output
        assert TEAM in shown.output and "$0.0100" in shown.output and "$1.0000" in shown.output
        changed = await _run(runner, ["set-budget", "team", TEAM, "--day", "2.5", "--month", "none"], env)
        assert changed.exit_code == 0, changed.output
        assert "$2.5000" in changed.output
        denied = await _run(runner, ["--scope", "team"], {**env, "WARDGATE_ADMIN_KEY": "wg-wrong"})
        assert denied.exit_code == 1 and "HTTP 401" in denied.output
    doc = await service.admin.spend("team", TEAM, None)  # type: ignore[union-attr]
    assert doc["windows"]["day"]["budget_usd"] == 2.5 and doc["windows"]["month"]["budget_usd"] is None


async def _run(runner: CliRunner, args: list[str], env: dict[str, str]) -> Any:
    import asyncio

    # The CLI is synchronous (urllib); run it off the loop that serves the store.
    return await asyncio.to_thread(runner.invoke, cli.app, args, env=env)
