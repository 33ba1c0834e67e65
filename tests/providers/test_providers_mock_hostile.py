"""The built-in mock answers any tool schema and any message, at a bounded cost.

Tool schemas and messages are the client's: the mock must never fail on their shape, never
run a client's regex with ``re`` (catastrophic backtracking), never rescan a long word from
each of its positions, and never let a schema ask for gigabytes. Normal schemas still get
valid arguments (``test_providers_mock.py``).
"""

from __future__ import annotations

import re
import time  # process_time: these bounds are CPU spent, which other load on the machine does not inflate
from typing import Any

import jsonschema
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.call import Endpoint
from wardgate_mock import generate
from wardgate_mock.budget import Budget
from wardgate_mock.facts import SCAN_CHARS, TextFacts
from wardgate_mock.regex import MAX_STATES, compile_pattern


def _arguments(parameters: Any, text: str = "look up order ORD-1001 for jane@example.com") -> str:
    tool = {"type": "function", "function": {"name": "lookup_order", "parameters": parameters}}
    body = {
        "model": "mock-chat",
        "messages": [{"role": "user", "content": text}],
        "tools": [tool],
        "tool_choice": "required",
    }
    answer = generate(Endpoint.CHAT, body)
    assert answer.status == 200, answer.json
    (call,) = answer.json["choices"][0]["message"]["tool_calls"]
    return call["function"]["arguments"]


# ---- the bounded regex matcher ----------------------------------------------------------------

_ATOMS = [
    "a",
    "b",
    "A",
    ".",
    r"\d",
    r"\w",
    r"\s",
    r"\W",
    "[ab]",
    "[^a]",
    "[a-c]",
    "é",
    r"\b",
    r"\B",
    "^",
    "$",
    r"\A",
    r"\Z",
    "-",
    r"\n",
]
_regexes = st.recursive(
    st.sampled_from(_ATOMS),
    lambda inner: st.one_of(
        st.tuples(inner, inner).map("".join),
        st.tuples(inner, inner).map(lambda p: f"({p[0]}|{p[1]})"),
        st.tuples(inner, st.sampled_from(["*", "+", "?", "{2}", "{1,3}", "{0,2}", "*?", "{,2}"])).map(
            lambda p: f"(?:{p[0]}){p[1]}"
        ),
    ),
    max_leaves=8,
).flatmap(lambda r: st.sampled_from(["", "(?i)", "(?m)", "(?s)", "(?a)"]).map(lambda f: f + r))


@settings(max_examples=400, deadline=None)
@given(pattern=_regexes, texts=st.lists(st.text("aAbB1 \n-é_", max_size=8), min_size=1, max_size=10))
def test_the_bounded_matcher_agrees_with_re(pattern: str, texts: list[str]) -> None:
    compiled = compile_pattern(pattern, Budget())
    assert compiled is not None, pattern
    for text in texts:
        assert compiled.search(text, Budget()) == (re.search(pattern, text) is not None), (pattern, text)


@pytest.mark.parametrize(
    "pattern",
    ["(?=a)b", "(?<!a)b", "(a)\\1", "(?>a+)b", "a*+b", "(?(1)a|b)", "(", "a" * 2000, "(?:a{100}){100}"],
)
def test_what_the_matcher_cannot_decide_safely_is_not_compiled(pattern: str) -> None:
    """Lookarounds, back-references, atomic/possessive groups, invalid and oversized patterns."""
    assert compile_pattern(pattern, Budget()) is None


def test_a_pattern_needing_more_states_than_the_cap_is_not_compiled() -> None:
    assert compile_pattern(f"a{{{MAX_STATES + 1}}}", Budget()) is None
    assert compile_pattern(f"a{{{MAX_STATES // 2}}}", Budget()) is not None


@pytest.mark.parametrize("pattern", ["^(a+)+$", "^(a|a)*$", "(a|a)" * 40 + "b", "\\w*" * 40 + "!"])
def test_a_catastrophic_pattern_costs_at_most_the_budget(pattern: str) -> None:
    budget = Budget()
    compiled = compile_pattern(pattern, budget)
    assert compiled is not None
    started = time.process_time()
    assert not any(compiled.search("a" * n + "c", budget) for n in range(20, 2000))
    assert time.process_time() - started < 0.2
    assert budget.steps == 0  # spent, so every later search in the same answer stops at once


def test_patterns_still_pick_the_matching_word_or_build_an_example() -> None:
    schema = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "pattern": "^[A-Z]{3}-\\d+$"},
            "ticket": {"type": "string", "pattern": "(?i)^tk\\d{3}$"},
            "zip": {"type": "string", "pattern": "^\\d{5}$"},
            "odd": {"type": "string", "pattern": "^(?=x)x$"},
        },
    }
    args = orjson.loads(_arguments(schema, "Move ABC-42 and TK123 please"))
    assert args["code"] == "ABC-42" and args["ticket"] == "TK123" and args["zip"] == "00000"
    assert args["odd"] == "Move ABC-42 and TK123 please"  # a lookahead is not checked: left as it was


# ---- hostile schemas ----------------------------------------------------------------------------

_schema_keys = st.sampled_from(
    [
        "type",
        "properties",
        "required",
        "items",
        "enum",
        "const",
        "anyOf",
        "oneOf",
        "allOf",
        "$ref",
        "pattern",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "minimum",
        "maximum",
        "exclusiveMinimum",
        "exclusiveMaximum",
        "default",
        "format",
        "$defs",
        "email",
        "to",
        "amount",
        "code",
        "query",
    ]
) | st.text(max_size=6)
_schema_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=10),
    st.sampled_from(
        [
            "object",
            "array",
            "string",
            "integer",
            "number",
            "boolean",
            "null",
            "#",
            "#/$defs/a",
            "#/properties/a",
            "^(a+)+$",
            "[",
            "email",
            "date",
            "x{4000000000}",
        ]
    ),
)
_schemas = st.recursive(
    _schema_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_schema_keys, inner, max_size=5),
    max_leaves=25,
)
_messages = st.sampled_from(
    [
        "",
        "hi",
        "pay $250.50 to Bob <EMAIL_ADDRESS_1> for ORD-7 on 2025-01-02",
        "x" * 5000,
        "1" * 400,
        "“quoted” \"and\" 'this'",
    ]
)


@settings(max_examples=200, deadline=None)
@given(parameters=st.dictionaries(_schema_keys, _schemas, max_size=6), text=_messages)
def test_any_json_schema_gets_a_tool_call_with_json_object_arguments(parameters: dict, text: str) -> None:
    for endpoint, tool in (
        (Endpoint.CHAT, {"type": "function", "function": {"name": "f", "parameters": parameters}}),
        (Endpoint.RESPONSES, {"type": "function", "name": "f", "parameters": parameters}),
    ):
        body = {
            "model": "mock-chat",
            "tool_choice": "required",
            "tools": [tool],
            **(
                {"messages": [{"role": "user", "content": text}]}
                if endpoint is Endpoint.CHAT
                else {"input": text}
            ),
        }
        answer = generate(endpoint, body)
        assert answer.status == 200, answer.json
        assert answer.plan is not None
        assert isinstance(orjson.loads(answer.plan.tool_calls[0].arguments), dict)


@settings(max_examples=100, deadline=None)
@given(schema=st.dictionaries(_schema_keys, _schemas, max_size=6))
def test_any_json_output_schema_gets_a_json_answer(schema: dict) -> None:
    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}
    answer = generate(
        Endpoint.CHAT,
        {"model": "mock-chat", "messages": [{"role": "user", "content": "hi"}], "response_format": fmt},
    )
    assert answer.status == 200, answer.json
    orjson.loads(answer.json["choices"][0]["message"]["content"])


_FAN_OUT = {
    "$defs": {
        "n": {
            "type": "object",
            "properties": {f"c{i}": {"$ref": "#/$defs/n"} for i in range(10)},
            "required": [f"c{i}" for i in range(10)],
        }
    },
    "type": "object",
    "properties": {"root": {"$ref": "#/$defs/n"}},
}
_BIG_CONST = {
    "$defs": {"b": {"const": "z" * 1_000_000}},
    "type": "object",
    "properties": {f"p{i}": {"$ref": "#/$defs/b"} for i in range(1000)},
}
_BIG_KEY = {
    "$defs": {"o": {"type": "object", "properties": {"k" * 1_000_000: {"type": "null"}}}},
    "type": "object",
    "properties": {f"a{i}": {"$ref": "#/$defs/o"} for i in range(1000)},
}


@pytest.mark.parametrize(
    "parameters",
    [
        {"type": "object", "properties": {"s": {"type": "string", "minLength": 2**62}}},
        {
            "type": "object",
            "properties": {"s": {"type": "array", "minItems": 2**62, "items": {"type": "string"}}},
        },
        {"type": "object", "properties": {"s": {"type": "string", "pattern": "x{4000000000}"}}},
        {"type": "object", "properties": {f"query{i}": {"type": "string"} for i in range(2000)}},
        _FAN_OUT,
        _BIG_CONST,
        _BIG_KEY,
    ],
    ids=[
        "minLength",
        "minItems",
        "pattern-repeat",
        "copies-of-the-message",
        "ref-fan-out",
        "big-const",
        "big-key",
    ],
)
def test_a_schema_cannot_make_the_mock_spend_without_bound(parameters: dict) -> None:
    started = time.process_time()
    arguments = _arguments(parameters, "please look up " * 20_000)
    assert time.process_time() - started < 0.5
    assert len(arguments) < 2_500_000


def test_numbers_stay_json_whatever_their_size() -> None:
    schema = {
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "big": {"type": "integer", "minimum": 1e300},
            "m": {"type": "number"},
            "order_no": {"type": "integer"},
        },
    }
    args = orjson.loads(_arguments(schema, "1" * 400 + " and " + "9" * 30))
    assert args["n"] == 999999999999999999999999999999 or isinstance(args["n"], float)
    assert args["big"] == 1e300
    assert all(isinstance(v, int | float) for v in args.values())


# ---- long messages ------------------------------------------------------------------------------

#: The email regex before it was made linear (quadratic on one long word): same matches.
_OLD_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|<EMAIL[A-Z_]*_\d+>")


@settings(max_examples=300, deadline=None)
@given(text=st.text("ab1_.+-@ <EMAIL>", max_size=40))
def test_the_linear_email_regex_finds_nothing_the_quadratic_one_did_not(text: str) -> None:
    # The linear regex only starts a match where a run of address characters starts, so it
    # may skip the old regex's overlapping leftovers (".@1.1" right after "1@1.1") — never more.
    assert set(TextFacts(text).emails) <= set(_OLD_EMAIL.findall(text))


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.text("ab1_.+-@", min_size=1, max_size=12), max_size=8))
def test_the_linear_email_regex_finds_every_space_separated_address(words: list[str]) -> None:
    text = " ".join(words)
    wanted = [w for w in words if _OLD_EMAIL.fullmatch(w)]
    assert [e for e in TextFacts(text).emails if e in wanted] == wanted


@pytest.mark.parametrize(
    "unit", ["x", "a.", "1", "<EMAIL_", "“", '"', "in ", "Aa ", "a-1", "#1", "$ ", "1\n"]
)
def test_fact_extraction_is_linear_in_the_message(unit: str) -> None:
    """Ten times the text takes about ten times as long (a quadratic regex: a hundred times)."""

    def extract(text: str) -> float:
        facts = TextFacts(text)
        started = time.process_time()
        for name in ("emails", "phones", "urls", "ids", "numbers", "quoted", "names", "dates", "currencies"):
            getattr(facts, name)
        return time.process_time() - started

    small, large = extract(unit * (SCAN_CHARS // 10 // len(unit))), extract(unit * (SCAN_CHARS // len(unit)))
    assert large < 0.3 and large < 30 * small + 0.01


def test_facts_are_read_from_the_start_of_a_huge_message() -> None:
    facts = TextFacts("mail jane@example.com " + "x" * 5_000_000 + " bob@example.com")
    assert facts.emails == ["jane@example.com"]
    assert facts.stripped.endswith("bob@example.com")  # free text fields still get the whole message


def test_arguments_from_a_long_message_are_still_valid() -> None:
    schema = {
        "type": "object",
        "properties": {
            "order_id": {"type": "string", "pattern": "^ORD-\\d+$"},
            "amount": {"type": "number", "minimum": 0},
            "to": {"type": "string", "format": "email"},
        },
        "required": ["order_id", "amount", "to"],
    }
    text = "refund ORD-1001 of $30 to jane@example.com " + "y" * 200_000
    args = orjson.loads(_arguments(schema, text))
    jsonschema.validate(args, schema)
    assert args == {"order_id": "ORD-1001", "amount": 30, "to": "jane@example.com"}
