"""Admin API numbers within their documented ranges, a forecast that never raises, and the
view of reservations in flight (list, release), over both stores."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx
import pytest
import yaml
from limits_helpers import TEAM, forwarded, make_call, make_service, settle
from test_limits_admin_api import ADMIN, AUDITOR, LIMITS, _app, _keys

from gateway.call import Usage
from gateway.http.launch import serve_app
from gateway.keys.store import KeyFileError, parse_key_file
from gateway.limits.admin import LimitsAdmin
from gateway.limits.bounds import MAX_BUDGET_USD, MAX_COUNT
from gateway.limits.rules import LimitRules
from gateway.limits.service import LimitsService
from gateway.limits.stage import LimitStage
from gateway.limits.store import RESERVATION, LimitStore, usd_to_nano
from tests.limits.limits_support import FakeClock


@pytest.fixture
async def service(store: LimitStore) -> LimitsService:
    service = make_service(store, LIMITS)
    service.admin = LimitsAdmin(service, _keys())
    return service


def _client(service: LimitsService, key: str = ADMIN) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app(service)),
        base_url="http://gw",
        headers={"authorization": f"Bearer {key}"},
    )


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/admin/budgets/key/k1", {"total": 1e10}, "total"),  # 1e19 nano-USD: beyond the Lua's exact range
        ("/admin/budgets/key/k1", {"day": MAX_BUDGET_USD + 0.01}, "day"),
        ("/admin/budgets/key/k1", {"month": -0.000001}, "month"),
        ("/admin/budgets/key/k1", {"day": "5"}, "day"),
        ("/admin/budgets/key/k1", {"day": True}, "day"),
        ("/admin/budgets/key/k1", {"budget_usd": {"total": 1e300}}, "total"),
        ("/admin/limits/key/k1", {"requests_per_minute": 1e19}, "requests_per_minute"),
        ("/admin/limits/key/k1", {"requests_per_minute": 2**53}, "requests_per_minute"),
        ("/admin/limits/key/k1", {"tokens_per_minute": 2**64}, "tokens_per_minute"),
        ("/admin/limits/key/k1", {"tokens_per_minute": -1}, "tokens_per_minute"),
        ("/admin/limits/key/k1", {"max_concurrent_requests": 2.5}, "max_concurrent_requests"),
        ("/admin/limits/key/k1", {"max_concurrent_requests": [3]}, "max_concurrent_requests"),
        (f"/admin/limits/team/{TEAM}", {"run_max_cost_usd": 1e7}, "run_max_cost_usd"),
        (f"/admin/limits/team/{TEAM}", {"run_max_calls": 1e16}, "run_max_calls"),
    ],
)
async def test_numbers_out_of_their_range_are_400_naming_the_field_and_change_nothing(
    service: LimitsService, path: str, body: dict[str, Any], param: str
) -> None:
    async with _client(service) as c:
        before = (await c.get("/admin/spend", params={"scope": "key", "id": "k1"})).json()
        r = await c.put(path, json=body)
        after = (await c.get("/admin/spend", params={"scope": "key", "id": "k1"})).json()
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert (
        error["param"] == param
        and error["type"] == "invalid_request_error"
        and "from 0 to" in error["message"]
    )
    assert before["override"] == after["override"] == {}


async def test_the_largest_numbers_in_range_are_exact_end_to_end(service: LimitsService) -> None:
    async with _client(service) as c:
        r = await c.put("/admin/budgets/key/k1", json={"total": MAX_BUDGET_USD})
        assert r.status_code == 200 and r.json()["windows"]["total"]["remaining_usd"] == MAX_BUDGET_USD
        r = await c.put(f"/admin/budgets/team/{TEAM}", json={"day": MAX_BUDGET_USD, "month": MAX_BUDGET_USD})
        assert r.status_code == 200
        r = await c.put(
            "/admin/limits/key/k1", json={"requests_per_minute": MAX_COUNT, "tokens_per_minute": 2.0e3}
        )
        assert r.status_code == 200 and r.json()["limits"]["requests_per_minute"] == MAX_COUNT
    call = make_call()
    await LimitStage(service).on_request(call)
    est = RESERVATION.get(call).est_nano
    remaining = call.response_headers["x-wardgate-budget-remaining"]
    # Not $0 (the overflow): the exact amount, to the header's six decimals.
    assert abs(usd_to_nano(float(remaining)) - (usd_to_nano(MAX_BUDGET_USD) - est)) <= 1000
    assert call.response_headers["x-ratelimit-limit-requests"] == str(MAX_COUNT)


async def test_the_forecast_of_a_large_budget_over_a_tiny_burn_is_null_not_a_500(
    service: LimitsService, clock: FakeClock
) -> None:
    call = make_call()
    await LimitStage(service).on_request(call)
    await settle(service, forwarded(call, Usage(10, 1)))  # a lightly used key: a tiny burn
    async with _client(service) as c:
        for budgets in ({"total": MAX_BUDGET_USD}, {"month": MAX_BUDGET_USD, "day": MAX_BUDGET_USD}):
            r = await c.put("/admin/budgets/key/k1", json=budgets)
            assert r.status_code == 200, r.text
            doc = (await c.get("/admin/spend", params={"scope": "key", "id": "k1"})).json()
            assert doc["burn_rate_usd_per_hour"] > 0
            for window in budgets:
                assert doc["windows"][window]["runs_out_at"] is None
                assert doc["windows"][window]["forecast"] in (
                    "lasts until reset",
                    "lasts more than 10 years at this rate",
                )


async def test_reservations_in_flight_are_listed_and_one_can_be_released(service: LimitsService) -> None:
    stuck, other = make_call(), make_call()
    for call in (stuck, other):
        await LimitStage(service).on_request(call)
    rid = RESERVATION.get(stuck).rid
    async with _client(service, AUDITOR) as c:
        listed = (await c.get("/admin/reservations", params={"scope": "team", "id": TEAM})).json()
        assert (
            await c.delete(f"/admin/reservations/{rid}", params={"scope": "team", "id": TEAM})
        ).status_code == 403
    assert {r["id"] for r in listed["data"]} == {rid, RESERVATION.get(other).rid}
    assert all(r["lease_expires_in_s"] > 0 and r["reserved_usd"] > 0 for r in listed["data"])
    async with _client(service) as c:
        r = await c.delete(f"/admin/reservations/{rid}", params={"scope": "team", "id": TEAM})
        assert r.status_code == 200 and r.json()["reservation"] == rid
        again = await c.delete(f"/admin/reservations/{rid}", params={"scope": "team", "id": TEAM})
        assert again.status_code == 404 and again.json()["error"]["code"] == "reservation_not_found"
        left = (await c.get("/admin/reservations", params={"scope": "team", "id": TEAM})).json()["data"]
    assert [r["id"] for r in left] == [RESERVATION.get(other).rid]
    st = await service.store.scope_state(TEAM, "team", TEAM)
    assert st.reserved_nano == RESERVATION.get(other).est_nano
    # The released call was alive after all: its settle books what it really cost.
    await settle(service, forwarded(stuck, Usage(100, 10)))
    spent = (await service.store.scope_state(TEAM, "team", TEAM)).spent_nano["total"]
    assert spent == usd_to_nano(stuck.cost_usd) > 0


def _keys_yaml(limits: dict[str, Any] | None = None, budgets: dict[str, Any] | None = None) -> str:
    entry: dict[str, Any] = {"id": "k", "sha256": hashlib.sha256(b"x").hexdigest(), "team": "t"}
    if limits is not None:
        entry["limits"] = limits
    if budgets is not None:
        entry["budgets"] = budgets
    return yaml.safe_dump({"keys": [entry]})


@pytest.mark.parametrize(
    ("limits", "budgets"),
    [
        ({"requests_per_minute": 1e19}, None),
        ({"tokens_per_minute": -5}, None),
        ({"max_concurrent_requests": "many"}, None),
        (None, {"total": 1e10}),
        (None, {"usd": {"day": float("inf")}}),
    ],
)
def test_keys_yaml_with_a_number_out_of_range_is_refused_at_load(limits: Any, budgets: Any) -> None:
    with pytest.raises(KeyFileError, match=r"keys\[0\]"):
        parse_key_file(_keys_yaml(limits, budgets))


@pytest.mark.parametrize(
    "doc",
    [
        {"scopes": {"key": {"requests_per_minute": 10**19}}},
        {"scopes": {"team": {"budget_usd": {"total": 1e10}}}},
        {"scopes": {"team": {"budget_usd": {"day": float("nan")}}}},
        {"teams": {"acme": {"run_guards": {"max_cost_usd": 2e6}}}},
        {"run_guards": {"max_calls": 2**60}},
    ],
)
def test_limits_yaml_with_a_number_out_of_range_is_refused_at_load(
    tmp_path: Any, doc: dict[str, Any]
) -> None:
    from pydantic import ValidationError

    path = tmp_path / "limits.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ValidationError):
        LimitRules.load(path)


async def test_the_spend_cli_never_turns_infinity_into_no_limit_and_passes_bad_counts_to_the_api(
    clock: FakeClock,
) -> None:
    from test_limits_admin_api import _run
    from typer.testing import CliRunner

    from gateway.limits.memory import MemoryStore

    service = make_service(MemoryStore(clock=clock), LIMITS)
    service.admin = LimitsAdmin(service, _keys())
    runner = CliRunner()
    with serve_app(_app(service), lifespan="off") as served:
        url = served.url
        env = {"WARDGATE_URL": url, "WARDGATE_ADMIN_KEY": ADMIN, "COLUMNS": "200"}
        inf = await _run(runner, ["set-budget", "team", TEAM, "--day", "inf"], env)
        assert inf.exit_code != 0 and "finite" in inf.output
        fraction = await _run(runner, ["set-limits", "key", "k1", "--concurrent", "1.5"], env)
        assert fraction.exit_code == 1 and "HTTP 400" in fraction.output
        ok = await _run(runner, ["set-limits", "key", "k1", "--concurrent", "4"], env)
        assert ok.exit_code == 0 and '"max_concurrent_requests":4' in ok.output
    doc = await service.admin.spend("team", TEAM, None)  # type: ignore[union-attr]
    assert doc["windows"]["day"]["budget_usd"] == 1.0  # from limits.yaml: untouched
