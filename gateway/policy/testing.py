"""Compile checks and ``test_*`` rules, under regorus and the real OPA engine.

Used by hot reload (a set is refused unless it compiles and its tests pass) and by
``wardgate policy test``. Both engines run every test: regorus is what serves by default,
OPA (``opa-lib``) is the strictness reference — it rejects policies regorus accepts
(``not input.roles[_] == "admin"`` is ``rego_unsafe_var_error`` in OPA), and the two must
agree on every test for the shared decision suite to mean anything.

A ``wardgate.derived`` package is also checked the way a load serves it (``derived.py``).

Tests follow ``opa test``: every rule named ``test_*`` in a module is evaluated without
input; it passes when its value is ``true``. ``todo_test_*`` rules are skipped.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.policy.derived import materialize
from gateway.policy.errors import PolicyCompileError, short_error
from gateway.policy.source import PolicySet, packages

ENGINES = ("regorus", "opa-lib")
_TEST_RE = re.compile(r"^(test_\w+)\b", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class TestCase:
    __test__ = False  # not a pytest class

    module: str
    package: str
    name: str
    line: int

    @property
    def location(self) -> str:
        return f"{self.module}:{self.line}"


@dataclass(frozen=True, slots=True)
class TestResult:
    __test__ = False

    engine: str
    case: TestCase
    passed: bool
    error: str | None = None
    duration_s: float = 0.0


@dataclass(slots=True)
class CheckReport:
    """Everything a validation found; ``ok`` means the set may become active."""

    results: list[TestResult] = field(default_factory=list)
    compile_errors: list[PolicyCompileError] = field(default_factory=list)

    @property
    def failed(self) -> list[TestResult]:
        return [r for r in self.results if not r.passed]

    @property
    def ok(self) -> bool:
        return not self.compile_errors and not self.failed

    def summary(self) -> dict[str, Any]:
        return {
            "tests": len(self.results),
            "passed": sum(r.passed for r in self.results),
            "failed": [
                {
                    "engine": r.engine,
                    "test": f"{r.case.package}.{r.case.name}",
                    "location": r.case.location,
                    "error": r.error,
                }
                for r in self.failed
            ],
            "compile_errors": [
                {"engine": e.engine, "location": e.location, "message": e.message}
                for e in self.compile_errors
            ],
        }

    def errors(self) -> list[str]:
        """One line per problem, each starting with ``file:line``."""
        lines = [str(e) for e in self.compile_errors]
        lines += [
            f"{r.case.location}: test {r.case.package}.{r.case.name} failed under {r.engine}"
            + (f": {r.error}" if r.error else "")
            for r in self.failed
        ]
        return lines


def discover(tests: Mapping[str, str]) -> list[TestCase]:
    """Every ``test_*`` rule of the test modules, once per name, in file order."""
    pkgs = packages(tests)
    cases: list[TestCase] = []
    for module in sorted(tests):
        text = tests[module]
        package = pkgs.get(module)
        if package is None:
            continue
        seen: set[str] = set()
        for m in _TEST_RE.finditer(text):
            name = m.group(1)
            if name in seen:
                continue
            seen.add(name)
            cases.append(TestCase(module, package, name, text.count("\n", 0, m.start()) + 1))
    return cases


def check(policy_set: PolicySet, engines: Iterable[str] = ENGINES, run_tests: bool = True) -> CheckReport:
    """Compile the set (modules and tests) with each engine and run its tests.

    Blocking (native engines, tens of ms): call it from a worker thread.
    """
    report = CheckReport()
    cases = discover(policy_set.tests) if run_tests else []
    modules = policy_set.all_modules()
    for engine in engines:
        t0 = time.perf_counter()
        try:
            outcomes = _RUNNERS[engine](modules, policy_set.data, cases)
        except PolicyCompileError as exc:
            report.compile_errors.append(exc)
            continue
        each = (time.perf_counter() - t0) / max(1, len(cases))
        for case, (value, error) in zip(cases, outcomes, strict=True):
            if error is None and value is not True:
                error = _describe(value)
            report.results.append(TestResult(engine, case, error is None, error, each))
    try:  # the derived package must be servable as data (the engines get it materialized)
        materialize(policy_set.modules, policy_set.data)
    except PolicyCompileError as exc:
        report.compile_errors.append(exc)
    return report


def _describe(value: Any) -> str:
    return "undefined (a condition did not hold)" if value is None else f"evaluated to {value!r}, not true"


Outcome = tuple[Any, str | None]  # (value, error)


def _regorus_runner(
    modules: Mapping[str, str], data: Mapping[str, Any], cases: list[TestCase]
) -> list[Outcome]:
    from gateway.policy.regorus_build import build_regorus

    engine = build_regorus(modules, data)
    outcomes: list[Outcome] = []
    try:
        for case in cases:
            try:
                outcomes.append((engine.eval_rule(f"data.{case.package}.{case.name}"), None))
            except Exception as exc:  # an erroring test is a failed test, reported with its message
                outcomes.append((None, short_error(exc, 300)))
    finally:
        del engine  # dropped on this (worker) thread, where it was built, whatever is raised
    return outcomes


def _opa_lib_runner(
    modules: Mapping[str, str], data: Mapping[str, Any], cases: list[TestCase]
) -> list[Outcome]:
    """All tests in one query (OPA prepares each distinct query, ~25 ms each); one by one only
    if that query fails, so a runtime error is pinned on its test."""
    from opa_bindings import OpaError, OpaUndefinedError

    from gateway.policy.engines.opa_lib import build_opa

    engine = build_opa(modules, data)
    try:
        if not cases:
            return []
        query = (
            "r := {"
            + ", ".join(f'"{i}": [x | x := data.{c.package}.{c.name}]' for i, c in enumerate(cases))
            + "}"
        )
        try:
            found = engine.eval_query(query)[0]["r"]
            return [(found[str(i)][0] if found[str(i)] else None, None) for i in range(len(cases))]
        except OpaError:
            pass
        outcomes: list[Outcome] = []
        for case in cases:
            try:
                outcomes.append((engine.eval_document(f"{case.package}.{case.name}"), None))
            except OpaUndefinedError:
                outcomes.append((None, None))
            except OpaError as exc:
                outcomes.append((None, f"{exc.code}: {exc.message}"[:300]))
        return outcomes
    finally:
        engine.close()


_RUNNERS: dict[str, Callable[[Mapping[str, str], Mapping[str, Any], list[TestCase]], list[Outcome]]] = {
    "regorus": _regorus_runner,
    "opa-lib": _opa_lib_runner,
}
