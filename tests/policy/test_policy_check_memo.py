"""A revision that passed its checks in this process is not compiled and tested again (gateways
started on one policy tree share the report); a refused one is checked at every load."""

from __future__ import annotations

import shutil
from pathlib import Path

from gateway.policy.reload import checked
from gateway.policy.source import load_policy_set
from tests.harness import REPO


def _tree(root: Path, extra_test: str = "") -> tuple[Path, Path]:
    rego, policies = root / "rego", root / "policies"
    shutil.copytree(REPO / "rego", rego)
    shutil.copytree(REPO / "policies", policies)
    if extra_test:
        (rego / "memo_test.rego").write_text(f"package wardgate.memo_test\n\n{extra_test}\n")
    return rego, policies


def test_a_passing_revision_is_checked_once_and_a_failing_one_every_time(tmp_path: Path) -> None:
    rego, policies = _tree(tmp_path / "good")
    first = checked(load_policy_set(rego, policies), True)
    again = checked(load_policy_set(rego, policies), True)
    assert first.ok and again is first  # same revision: the same report, no second run
    assert checked(load_policy_set(rego, policies), False) is not first  # without tests: its own

    rego, policies = _tree(tmp_path / "bad", "test_fails if { 1 == 2 }")
    refused = checked(load_policy_set(rego, policies), True)
    assert not refused.ok and {r.case.name for r in refused.failed} == {"test_fails"}
    assert checked(load_policy_set(rego, policies), True) is not refused  # checked again
