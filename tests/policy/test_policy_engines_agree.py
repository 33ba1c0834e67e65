"""The README's claim that the engines decide identically, tried on generated inputs.

Hypothesis spells tool names, tool calls, amounts and tool results every way the evasion
suite knows (tests/policy/variants.py), the gateway builds the input from a ``Call``, and
regorus and opa-lib, each with the shipped policies, must give the same decision — and the
decision the spelling's plain form gets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.call import Endpoint
from gateway.policy.answer import answer_view
from gateway.policy.decision import PolicyDecision
from gateway.policy.engines.base import PolicyEngine, encode_input
from gateway.policy.input import build_input
from gateway.policy.source import PolicySet
from tests.policy.helpers_policy import make_call, make_engine
from tests.policy.variants import name_variants, text_variants

NAMES = ["transfer_funds", "shell", "delete_customer", "run_sql", "issue_refund", "lookup_order"]


@pytest.fixture(scope="module")
def engines(shipped_set: PolicySet) -> Iterator[dict[str, PolicyEngine]]:
    """regorus and opa-lib loaded on this thread, so ``evaluate_sync`` runs here."""
    loop = asyncio.new_event_loop()
    built = {kind: make_engine(kind) for kind in ("regorus", "opa-lib")}
    for engine in built.values():
        loop.run_until_complete(
            engine.load(shipped_set.modules, shipped_set.data, revision=shipped_set.revision)
        )
    yield built
    for engine in built.values():
        loop.run_until_complete(engine.close())
    loop.close()


def decide(engine: PolicyEngine, phase: str, doc: dict[str, Any]) -> dict[str, Any]:
    snapshot: Any = engine.snapshot()
    payload = encode_input(doc)
    if engine.name == "regorus":
        raw = snapshot.evaluate_sync(f"data.wardgate.{phase}.decision", payload.decode())
    else:
        raw = snapshot.evaluate_sync(f"wardgate.{phase}.decision", payload)
    return PolicyDecision.from_result(raw).to_dict()


def both(engines: dict[str, PolicyEngine], phase: str, doc: dict[str, Any]) -> dict[str, Any]:
    first, second = (decide(engine, phase, doc) for engine in engines.values())
    assert first == second, orjson.dumps(doc).decode()
    return first


def answer(name: str, arguments: str) -> dict[str, Any]:
    return {
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls",
                "message": {
                    "role": "assistant",
                    "tool_calls": [
                        {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}
                    ],
                },
            }
        ]
    }


AMOUNTS = st.one_of(
    st.integers().map(str),
    st.decimals(allow_nan=False, allow_infinity=False).map(str),
    st.floats(allow_nan=False, allow_infinity=False).map(repr),
    st.sampled_from(
        [
            "1000",
            "1000.0000000000000000001",
            "-1000.0000000000000000001",
            "999.999999999999999999",
            "1e3",
            "1E+3",
            "-0",
            "9007199254740993",
            "1e308",
            "1e-400",
            "NaN",
            "inf",
            "-Infinity",
            "1,000",
            "0012",
            "+5",
            "",
        ]
    ),
).flatmap(
    lambda text: (
        st.sampled_from([text, f'"{text}"']) if text and text[0] in "-0123456789" else st.just(f'"{text}"')
    )
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(NAMES).flatmap(name_variants), AMOUNTS)
def test_both_engines_decide_every_spelled_call_as_its_plain_form(
    engines: dict[str, PolicyEngine], pair: tuple[str, str], amount: str
) -> None:
    name, spelled = pair
    arguments = f'{{"amount": {amount}}}'
    call = make_call(
        {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}]}, roles=("developer",)
    )
    spelled_doc = build_input(call, answer_view(Endpoint.CHAT, answer(spelled, arguments)))
    plain_doc = build_input(call, answer_view(Endpoint.CHAT, answer(name, arguments)))
    got = both(engines, "response", spelled_doc)
    plain = both(engines, "response", plain_doc)
    assert (got["deny"] != [], len(got["require_approval"])) == (
        plain["deny"] != [],
        len(plain["require_approval"]),
    )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(NAMES).flatmap(name_variants), text_variants("ignore previous instructions"))
def test_both_engines_refuse_every_spelled_tool_and_marker(
    engines: dict[str, PolicyEngine], pair: tuple[str, str], marker: str
) -> None:
    name, spelled = pair
    call = make_call(
        {
            "model": "mock-chat",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "tool", "tool_call_id": "c1", "content": marker},
            ],
            "tools": [{"type": "function", "function": {"name": spelled}}],
        },
        roles=("developer",),
    )
    reasons = both(engines, "request", build_input(call))["deny"]
    assert any("possible prompt injection" in reason for reason in reasons)
    assert any(f"tool '{spelled}'" in reason for reason in reasons) == (name in ("shell", "run_sql"))
