"""limits.yaml: precedence (defaults → models → teams → key), scopes of a call, validation."""

from __future__ import annotations

from pathlib import Path

import pytest
from limits_helpers import TEAM, make_call
from pydantic import ValidationError

from gateway.call import Principal
from gateway.limits.rules import LimitRules, LimitsFile
from gateway.limits.store import scope_ident, usd_to_nano

REPO = Path(__file__).resolve().parents[2]
DOC = {
    "scopes": {
        "key": {"requests_per_minute": 100, "budget_usd": {"day": 10}},
        "team": {"budget_usd": {"month": 100}},
        "model": {"tokens_per_minute": 1000},
    },
    "models": {"gpt-4o": {"tokens_per_minute": 500}},
    "combinations": {"agent+model": {"requests_per_minute": 7}},
    "run_guards": {"max_calls": 50, "max_identical_requests": 5},
    "teams": {
        TEAM: {
            "scopes": {"key": {"requests_per_minute": 200}},
            "models": {"gpt-4o": {"tokens_per_minute": 50}},
            "run_guards": {"max_calls": 10},
        }
    },
}


def _rules(doc: dict | None = None) -> LimitRules:
    return LimitRules(LimitsFile.model_validate(doc or DOC), run_ttl_s=3600, agent_ttl_s=7200)


def _by_kind(call_model: str = "gpt-4o", principal: Principal | None = None) -> dict[str, object]:
    call = make_call(call_model, principal=principal, agent_id="a1", run_id="r1")
    specs, team_index, run_index = _rules().scopes_for(call, call.principal)
    assert specs[team_index].kind == "team" and specs[run_index].kind == "run"
    return {s.kind: s for s in specs}


def test_team_settings_win_over_defaults_field_by_field() -> None:
    scopes = _by_kind()
    assert scopes["key"].rpm == 200  # team
    assert scopes["key"].budget_nano == (usd_to_nano(10), None, None)  # default, untouched by the team
    assert scopes["team"].budget_nano == (None, usd_to_nano(100), None)


def test_model_limits_layer_defaults_model_and_team_model() -> None:
    assert _by_kind("gpt-4o")["model"].tpm == 50
    assert _by_kind("mock-chat")["model"].tpm == 1000
    other = Principal(key_id="k9", team="elsewhere")
    assert _by_kind("gpt-4o", other)["model"].tpm == 500


def test_keys_yaml_limits_and_budgets_win_for_the_key_scope() -> None:
    p = Principal(
        key_id="k1", team=TEAM, limits={"requests_per_minute": 3}, budgets={"day": 1.5, "total": 20}
    )
    key = _by_kind(principal=p)["key"]
    assert key.rpm == 3 and key.budget_nano == (usd_to_nano(1.5), None, usd_to_nano(20))


def test_combinations_and_retention_of_caller_chosen_ids() -> None:
    scopes = _by_kind()
    combo = scopes["agent+model"]
    assert combo.ident == scope_ident("a1", "gpt-4o") and combo.rpm == 7
    assert scopes["run"].retention_ms == 3_600_000 and scopes["agent"].retention_ms == 7_200_000
    assert combo.retention_ms == 7_200_000 and scopes["key"].retention_ms == 0


def test_unconfigured_optional_scopes_are_not_counted() -> None:
    rules = _rules({"scopes": {"key": {"requests_per_minute": 1}}})
    call = make_call(agent_id="a1")
    kinds = [s.kind for s in rules.scopes_for(call, call.principal)[0]]
    assert kinds == ["key", "team", "agent"]  # no user, model or run scope


def test_run_guards_merge_team_over_defaults() -> None:
    guards = _rules().run_guards(TEAM)
    assert (guards.max_calls, guards.max_identical_requests) == (10, 5)
    assert _rules().run_guards("other").max_calls == 50


@pytest.mark.parametrize(
    "doc",
    [
        {"scopes": {"galaxy": {}}},
        {"scopes": {"key": {"requests_per_minute": -1}}},
        {"scopes": {"key": {"budget_usd": {"week": 5}}}},
        {"combinations": {"agent+agent": {}}},
        {"combinations": {"agent": {}}},
        {"run_guards": {"max_identical_requests": 0}},
    ],
)
def test_invalid_limits_files_are_refused(doc: dict) -> None:
    with pytest.raises(ValidationError):
        LimitsFile.model_validate(doc)


def test_shipped_limits_file_is_valid() -> None:
    rules = LimitRules.load(REPO / "policies" / "limits.yaml")
    assert rules.run_guards("demo").max_identical_requests == 5
