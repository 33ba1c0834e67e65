"""Derived data (gateway/policy/derived.py): the ``wardgate.derived`` package is computed once
per revision, served as data to every engine, and refused at load when it could differ per
call or cannot be data."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.policy.derived import materialize
from gateway.policy.engines.opa_lib import build_opa
from gateway.policy.errors import PolicyCompileError
from gateway.policy.source import PolicySet
from gateway.policy.testing import check
from tests.opa_server import OpaServer
from tests.policy.helpers_policy import make_engine
from tests.policy.test_policy_api_cli import run_cli

DATA = {"wardgate": {"policy": {"words": ["Alpha", "beta"], "limit": 3}}}
DERIVED = """package wardgate.derived

# input here would only be text in a comment
words := [lower(w) | some w in data.wardgate.policy.words]

pattern := concat("|", words)

limit := data.wardgate.policy.limit * 2
"""
RULES = """package wardgate.rules

decision := {"hit": regex.match(data.wardgate.derived.pattern, lower(input.text)),
             "limit": data.wardgate.derived.limit}
"""
MODULES = {"rego/derived.rego": DERIVED, "rego/rules.rego": RULES}


def test_the_derived_package_becomes_data_and_leaves_the_serving_set() -> None:
    modules, data = materialize(MODULES, DATA)
    assert sorted(modules) == ["rego/rules.rego"]
    assert data["wardgate"]["derived"] == {"words": ["alpha", "beta"], "pattern": "alpha|beta", "limit": 6}
    assert data["wardgate"]["policy"] == DATA["wardgate"]["policy"]
    assert "derived" not in DATA["wardgate"]  # the caller's data is not modified


def test_a_set_without_a_derived_package_is_served_as_it_is() -> None:
    modules, data = materialize({"rego/rules.rego": RULES}, DATA)
    assert modules == {"rego/rules.rego": RULES} and data == DATA


def test_the_shipped_derived_values_equal_what_real_opa_computes(shipped_set: PolicySet) -> None:
    _, data = materialize(shipped_set.modules, shipped_set.data)
    engine = build_opa(shipped_set.modules, shipped_set.data)
    try:
        assert data["wardgate"]["derived"] == engine.eval_document("wardgate.derived")
    finally:
        engine.close()
    assert data["wardgate"]["derived"]["teams"]["support"]["max_tokens"] == 1024


@pytest.mark.parametrize(
    ("text", "line", "why"),
    [
        ("package wardgate.derived\n\nx := 1\n\ny := input.user\n", 5, "may not read input"),
        ("package wardgate.derived\n\nimport data.wardgate.lib\n", 3, "not data.wardgate.lib"),
        ("package wardgate.derived\n\nx := data.other\n", 3, "not data.other"),
        ("package wardgate.derived\n\nx := data\n", 3, "may read only data.wardgate"),
        ("package wardgate.derived\n\nnow := time.now_ns()\n", 3, "may not call time.now_ns"),
        ("package wardgate.derived\n\ndouble(x) := 2 * x\n", 3, "may not define functions"),
        ("package wardgate.derived\n\nnames := {w | some w in data.wardgate.policy.words}\n", 1, "no sets"),
        ("package wardgate.derived\n\nx := object.union(data.wardgate.policy.limit, {})\n", 1, "failed"),
    ],
)
def test_a_derived_package_that_could_differ_per_call_is_refused(text: str, line: int, why: str) -> None:
    with pytest.raises(PolicyCompileError) as caught:
        materialize({"rego/derived.rego": text, "rego/rules.rego": RULES}, DATA)
    assert caught.value.location == f"rego/derived.rego:{line}"
    assert why in caught.value.message


def test_policy_checks_report_a_bad_derived_package() -> None:
    bad = DERIVED.replace("limit := data.wardgate.policy.limit * 2", "limit := input.limit")
    report = check(PolicySet.build({**MODULES, "rego/derived.rego": bad}, DATA), engines=("regorus",))
    assert not report.ok
    assert any(e.location == "rego/derived.rego:8" and "input" in e.message for e in report.compile_errors)


def test_cli_policy_test_fails_on_a_derived_package_reading_input(tmp_path: Path) -> None:
    rego = tmp_path / "rego"
    rego.mkdir()
    (rego / "derived.rego").write_text("package wardgate.derived\n\nteam := input.principal.team\n")
    result = run_cli("test", str(rego), "--data", str(tmp_path), "--quiet")
    assert result.exit_code == 1
    assert "ERROR derived" in result.output and "rego/derived.rego:3" in result.output


@pytest.mark.parametrize("kind", ["regorus", "opa-lib", "opa"])
async def test_every_engine_decides_on_the_derived_data(kind: str) -> None:
    with OpaServer() as server:
        engine = make_engine(kind, server.url)
        try:
            await engine.load(MODULES, DATA)
            decide: Any = engine.evaluate
            assert await decide("wardgate/rules/decision", {"text": "BETA version"}) == {
                "hit": True,
                "limit": 6,
            }
            assert await decide("wardgate/rules/decision", {"text": "gamma"}) == {"hit": False, "limit": 6}
            assert await decide("wardgate/derived/limit", {}) == 6  # the served data, same path
        finally:
            await engine.close()
        if kind == "opa":
            assert sorted(server.store.policies) == ["wardgate/rego/rules.rego"]
            assert server.store.data["wardgate"]["derived"]["pattern"] == "alpha|beta"


async def test_a_load_with_a_bad_derived_package_keeps_the_last_revision() -> None:
    engine = make_engine("regorus")
    try:
        revision = await engine.load(MODULES, DATA)
        with pytest.raises(PolicyCompileError):
            await engine.load(
                {**MODULES, "rego/derived.rego": "package wardgate.derived\n\nx := input.y\n"}, DATA
            )
        assert engine.revision == revision
        assert await engine.evaluate("wardgate/rules/decision", {"text": "alpha"}) == {
            "hit": True,
            "limit": 6,
        }
    finally:
        await engine.close()


async def test_an_opa_preloaded_with_the_derived_module_takes_the_push() -> None:
    """An OPA started on the policy files (``opa run --server rego/``) holds the derived
    package as a module; the gateway's push serves it as data at the same path, so the stale
    module has to leave first (OPA refuses data that conflicts with a rule)."""
    with OpaServer() as server:
        server.store.put_data(["wardgate"], DATA["wardgate"])
        for name, text in MODULES.items():
            server.store.put_policy("wardgate/" + name, text)
        engine = make_engine("opa", server.url)
        try:
            await engine.load(MODULES, DATA)
            assert await engine.evaluate("wardgate/rules/decision", {"text": "alpha"}) == {
                "hit": True,
                "limit": 6,
            }
        finally:
            await engine.close()
        assert sorted(server.store.policies) == ["wardgate/rego/rules.rego"]
        assert server.store.data["wardgate"]["derived"]["limit"] == 6
