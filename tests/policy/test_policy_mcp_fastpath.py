"""The ``wardgate.mcp`` fast path (gateway/policy/mcpfast.py) gives only the engine's answers.

Every answer the fast path gives is compared with regorus deciding the same input on the same
revision, over generated inputs (servers, methods, stages, tool names incl. look-alikes and
glob characters, kinds, roles, arguments, result texts with and without markers) and several
policy settings (the shipped ones; tool rules, kind rules and high-stakes rules on listed
tools; allow lists with globs; odd markers; no markers). The fast path must also actually
answer the plain cases (else it is proven and useless), and switch itself off for any other
policy text.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import itertools
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.policy.decision import PolicyDecision
from gateway.policy.engines.embedded import RegorusEngine, RegorusSnapshot
from gateway.policy.mcpfast import SHIPPED, McpFastPath
from gateway.policy.source import PolicySet, load_policy_set
from gateway.policy.textkey import name_key
from tests.policy.helpers_policy import REPO

RULE = "data.wardgate.mcp.decision"
MARKER = "ignore previous instructions"


def _variants() -> dict[str, Any]:
    """policy.yaml edits, each a revision the fast path is checked on."""
    return {
        "shipped": lambda p: None,
        "rules_on_listed": lambda p: p.update(
            tool_rules=[
                {"tools": ["lookup_*"], "unless_roles": ["ops"], "reason": "r1"},
                {"tools": ["search_kb"], "kinds": ["mcp"], "reason": "r2"},
            ],
            high_stakes={
                "lookup_customer": {"argument": "amount", "above": 5},
                "get_balance": {"deny": True},
            },
            injection={"markers": ["a.b*c", "(x)|y", "Zed  Marker", MARKER]},
        ),
        "globs_and_empty_prefix": lambda p: p.update(
            tool_rules=[{"tools": ["*_admin"], "reason": "r3"}],
            mcp={
                "servers": {
                    "crm": {"tools": ["lookup_*", "search_kb"]},
                    "payments": {"tools": ["get_balance", "[abc"]},  # a malformed glob
                }
            },
            injection={"markers": []},
        ),
    }


def _load(policy_set: PolicySet, edit: Any) -> RegorusEngine:
    data = copy.deepcopy(dict(policy_set.data))
    edit(data["wardgate"]["policy"])
    engine = RegorusEngine()
    asyncio.run(engine.load(policy_set.modules, data))
    return engine


@pytest.fixture(scope="module")
def engines() -> dict[str, RegorusEngine]:
    shipped = load_policy_set(REPO / "rego", REPO / "policies")
    return {name: _load(shipped, edit) for name, edit in _variants().items()}


def _pair(engine: RegorusEngine) -> tuple[RegorusSnapshot, McpFastPath]:
    snapshot = engine.snapshot()
    assert isinstance(snapshot, RegorusSnapshot)
    fast = engine.mcp_fast(snapshot)
    assert fast is not None, "the shipped modules must get a fast path"
    return snapshot, fast


def _doc(
    server: str, method: str, stage: str, tool: dict[str, Any] | None, roles: list[str], text: str | None
) -> dict[str, Any]:
    mcp: dict[str, Any] = {"server": server, "method": method, "stage": stage, "call_id": "7"}
    if tool is not None:
        mcp["tool"] = tool
    if text is not None:
        mcp["result"] = {"text": text}
    return {
        "version": 1,
        "principal": {"key_id": "k", "team": "t", "user": "u", "roles": roles, "tags": {}},
        "agent": {"id": "a", "run_id": "r", "parent_run_id": None},
        "pii": None,
        "time": {"now": "2026-12-07T20:00:00Z", "weekday": "Monday", "hour": 20},
        "mcp": mcp,
    }


def _agree(snapshot: RegorusSnapshot, fast: McpFastPath, doc: dict[str, Any]) -> bool:
    """Whether the fast path answered; when it did, it must be the engine's decision."""
    answer = fast.decide(doc)
    if answer is None:
        return False
    engine = snapshot.evaluate_sync(RULE, orjson.dumps(doc).decode())
    assert PolicyDecision.from_result(answer) == PolicyDecision.from_result(engine), (doc, engine)
    return True


NAME_LIST = [
    "lookup_order",
    "Lookup_Order",
    "lookup_customer",
    "search_kb",
    "transfer_funds",
    "get_balance",
    "delete_customer",
    "issue_refund",
    "shell_x",
    "db_drop",
    "run_sql",
    "x_admin",
    "lооkup_order",  # Cyrillic o
    "lookup_order\u200b",
    "lookup_*",
    "",
]
NAMES = st.sampled_from(NAME_LIST) | st.text(max_size=12)
TEXTS = st.one_of(
    st.none(),
    st.text(max_size=40),
    st.builds(
        lambda a, m, b: a + m + b,
        st.text(max_size=8),
        st.sampled_from([MARKER, "a.b*c", "(x)|y", "zed marker"]),
        st.text(max_size=8),
    ),
    st.just(42),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    variant=st.sampled_from(sorted(_variants())),
    server=st.sampled_from(["crm", "payments", "nowhere"]),
    method=st.sampled_from(["tools/call", "tools/list", "resources/read", "prompts/get"]),
    stage=st.sampled_from(["call", "list", "result"]),
    name=NAMES,
    raw_key=st.booleans(),
    kind=st.sampled_from(["mcp", "mcp", "shell", "prompt"]),
    amount=st.one_of(st.none(), st.integers(-10_000, 10_000), st.text(max_size=4)),
    roles=st.lists(st.sampled_from(["ops", "dba", "finance"]), max_size=2),
    text=TEXTS,
)
def test_every_fast_answer_is_the_engines(
    engines: dict[str, RegorusEngine],
    variant: str,
    server: str,
    method: str,
    stage: str,
    name: str,
    raw_key: bool,
    kind: str,
    amount: Any,
    roles: list[str],
    text: Any,
) -> None:
    snapshot, fast = _pair(engines[variant])
    arguments = {} if amount is None else {"amount": amount}
    tool = {
        "name": name,
        "name_key": name if raw_key else name_key(name),
        "kind": kind,
        "arguments": arguments,
    }
    _agree(snapshot, fast, _doc(server, method, stage, tool, roles, text))


def test_every_listed_combination(engines: dict[str, RegorusEngine]) -> None:
    """Every variant x server x method x stage x name x kind x roles, exhaustively."""
    answered = 0
    for variant in sorted(engines):
        snapshot, fast = _pair(engines[variant])
        for server, method, stage, name, kind, roles in itertools.product(
            ("crm", "payments", "nowhere"),
            ("tools/call", "tools/list", "resources/read"),
            ("call", "list", "result"),
            NAME_LIST,
            ("mcp", "shell"),
            ([], ["ops"]),
        ):
            tool = {"name": name, "name_key": name_key(name), "kind": kind, "arguments": {"amount": 50}}
            text = f"{name} {MARKER}" if name.startswith("d") else name
            answered += _agree(snapshot, fast, _doc(server, method, stage, tool, roles, text))
    assert answered > 500


def test_the_plain_cases_are_answered_fast(engines: dict[str, RegorusEngine]) -> None:
    snapshot, fast = _pair(engines["shipped"])
    tool = {
        "name": "lookup_order",
        "name_key": "lookup_order",
        "kind": "mcp",
        "arguments": {"order_id": "O-1"},
    }
    assert _agree(snapshot, fast, _doc("crm", "tools/call", "call", tool, [], None))
    assert _agree(snapshot, fast, _doc("crm", "tools/list", "list", {**tool, "arguments": None}, [], None))
    assert _agree(snapshot, fast, _doc("crm", "tools/call", "result", tool, [], '{"status": "shipped"}'))
    # ... and every other case goes to the engine: a high-stakes tool, a marker, a tool rule.
    transfer = {**tool, "name": "transfer_funds", "name_key": "transfer_funds", "arguments": {"amount": 5}}
    assert fast.decide(_doc("payments", "tools/call", "call", transfer, [], None)) is None
    assert fast.decide(_doc("crm", "tools/call", "result", tool, [], f"x {MARKER} y")) is None
    shell = {**tool, "name": "shell_exec", "name_key": "shell_exec"}
    assert fast.decide(_doc("crm", "tools/call", "call", shell, [], None)) is None
    assert fast.decide(_doc("nowhere", "tools/call", "call", tool, [], None)) is None


def test_an_edited_policy_has_no_fast_path() -> None:
    shipped = load_policy_set(REPO / "rego", REPO / "policies")
    extra = 'package wardgate.mcp\n\ndeny contains "after hours" if input.time.hour > 18\n'
    ref_head = 'package wardgate\n\nmcp.deny contains "nope" if true\n'
    for modules in (
        {**shipped.modules, "rego/mcp.rego": shipped.modules["rego/mcp.rego"] + "\n# edited\n"},
        {**shipped.modules, "rego/extra.rego": extra},
        {**shipped.modules, "rego/ref.rego": ref_head},
    ):
        engine = RegorusEngine()
        try:
            asyncio.run(engine.load(modules, shipped.data))
        except Exception:  # a set the engine refuses has no fast path either
            continue
        assert engine.mcp_fast(engine.snapshot()) is None


def test_shipped_hashes_are_the_files() -> None:
    """A change to rego/mcp.rego or rego/lib.rego switches the fast path off until someone
    re-checks gateway/policy/mcpfast.py against the new rules (and this file's cases), then
    updates SHIPPED."""
    for package, path in (("wardgate.mcp", "rego/mcp.rego"), ("wardgate.lib", "rego/lib.rego")):
        digest = hashlib.sha256((REPO / path).read_bytes()).hexdigest()
        assert SHIPPED[package] == digest, (
            f"{path} changed: re-check gateway/policy/mcpfast.py, then update SHIPPED"
        )
