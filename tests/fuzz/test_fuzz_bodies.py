"""Mutational fuzzing of the proxy endpoints: valid requests with one part made hostile.

Schemathesis (``test_fuzz_openapi.py``) explores what the OpenAPI document describes; this
fuzzer starts from requests that work (real models on the fake upstream and on the built-in
mock, with tools and streaming) and breaks them where parsers and stages are fragile: any
JSON value at any path (inside tool schemas too), hostile schemas (catastrophic patterns,
``$ref`` fan-out, sizes of 2**62), lone surrogates, deep nesting, long strings and long
unbroken words, raw literals that are not JSON (NaN, 1e400, invalid UTF-8, truncation),
duplicate keys, odd identity headers.
Whatever comes back must be a 2xx or an OpenAI-shaped 4xx, never a 5xx.
"""

from __future__ import annotations

import copy
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.fuzz_helpers import (
    ENDPOINT_MODELS,
    JSON_HEADERS,
    any_text,
    assert_clean,
    dumps,
    fuzz_settings,
    json_values,
    lone_surrogates,
    odd_literals,
)
from tests.harness import RunningGateway

_TOOL = {
    "type": "function",
    "function": {
        "name": "lookup_order",
        "description": "Look up an order by id",
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string"}, "amount": {"type": "number", "minimum": 0}},
            "required": ["order_id"],
        },
    },
}
_RESPONSES_TOOL = {"type": "function", **_TOOL["function"]}
_ASK = "please look up order ORD-1001 for me"
_BASES: dict[str, list[dict[str, Any]]] = {
    "/v1/chat/completions": [
        {"messages": [{"role": "user", "content": "hi"}]},
        {
            "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": _ASK}],
            "tools": [_TOOL],
            "tool_choice": "auto",
            "max_tokens": 50,
        },
        {
            "messages": [{"role": "user", "content": [{"type": "text", "text": _ASK}]}],
            "tools": [_TOOL],
            "tool_choice": {"type": "function", "function": {"name": "lookup_order"}},
            "stream": True,
            "stream_options": {"include_usage": True},
        },
        {
            "messages": [
                {"role": "user", "content": _ASK},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": "call_1",
                            "type": "function",
                            "function": {"name": "lookup_order", "arguments": '{"order_id": "ORD-1001"}'},
                        }
                    ],
                },
                {"role": "tool", "tool_call_id": "call_1", "content": "shipped"},
            ],
            "tools": [_TOOL],
            "response_format": {"type": "json_object"},
            "metadata": {"agent_id": "a1"},
        },
    ],
    "/v1/responses": [
        {"input": "hi"},
        {
            "input": [{"role": "user", "content": _ASK}],
            "tools": [_RESPONSES_TOOL],
            "tool_choice": "required",
            "instructions": "be brief",
            "max_output_tokens": 40,
        },
        {
            "input": [{"role": "user", "content": [{"type": "input_text", "text": _ASK}]}],
            "stream": True,
            "tools": [_RESPONSES_TOOL],
        },
        {
            "input": [
                {"role": "user", "content": _ASK},
                {"type": "function_call", "call_id": "call_1", "name": "lookup_order", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "shipped"},
            ],
            "text": {"format": {"type": "json_schema", "name": "a", "schema": {"type": "object"}}},
        },
    ],
    "/v1/embeddings": [
        {"input": "hi"},
        {"input": ["a", "b"], "encoding_format": "base64", "dimensions": 16},
        {"input": [[1, 2, 3], [4]], "encoding_format": "float"},
    ],
}
_IDENTITY_HEADERS = ("x-agent-id", "x-run-id", "x-parent-run-id", "x-request-id")
#: Header values an HTTP client can put on the wire: visible latin-1, spaces and tabs inside.
_header_values = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f") | st.just("\t"),
    min_size=1,
    max_size=300,
).map(lambda s: s.strip(" \t") or "x")
_RAW = "\x00__wardgate_fuzz_raw__"


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON document up to 6 levels deep (the root excluded)."""
    out: list[tuple[Any, ...]] = []
    if len(prefix) >= 6:
        return out
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        out.append((*prefix, key))
        out.extend(_paths(child, (*prefix, key)))
    return out


def _set(body: Any, path: tuple[Any, ...], value: Any) -> None:
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def _deep(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = [value] if i % 2 else {"k": value}
    return value


#: Tool and output schemas a client may send: any shape, catastrophic patterns, ``$ref`` cycles
#: that fan out, sizes of 2**62, a non-object ``properties`` at any depth.
_hostile_schemas = st.sampled_from(
    [
        {"type": "object", "properties": 5},
        {"type": "object", "properties": ["a"], "required": {"a": 1}},
        {"type": "object", "properties": {"a": {"type": "object", "properties": True}}, "required": ["a"]},
        {"type": [], "properties": {}},
        {"type": {"x": 1}, "items": [1], "enum": {}, "anyOf": [5, None], "allOf": 3},
        {"type": "string", "pattern": "^(a+)+$"},
        {"type": "string", "pattern": "(a|a)" * 40 + "b"},
        {"type": "string", "pattern": "x{4000000000}", "minLength": 2**62},
        {"type": "array", "minItems": 2**62, "items": {"type": "string", "minLength": 2**40}},
        {"type": "integer", "minimum": 1e300},
        {"type": "number", "exclusiveMaximum": -1e308},
        {"$ref": "#"},
        {"$ref": "#/properties/order_id"},
        {"anyOf": [{"$ref": "#"}]},
        {
            "$defs": {
                "n": {
                    "type": "object",
                    "properties": {f"c{i}": {"$ref": "#/$defs/n"} for i in range(8)},
                    "required": [f"c{i}" for i in range(8)],
                }
            },
            "$ref": "#/$defs/n",
        },
    ]
)

_values = st.one_of(
    json_values,
    lone_surrogates,
    any_text,
    _hostile_schemas,
    st.integers(min_value=1, max_value=400).map(_deep),
    st.integers(min_value=1, max_value=60_000).map(lambda n: "lorem " * n),
    # One long unbroken word: the built-in mock's fact regexes were quadratic on it.
    st.tuples(
        st.sampled_from(["x", "a.", "1", "<EMAIL_", "“", "a-1"]), st.integers(min_value=1, max_value=60_000)
    ).map(lambda t: t[0] * t[1]),
    st.lists(st.just({"role": "user", "content": "x"}), min_size=0, max_size=3000),
    st.sampled_from(["", " ", "gpt-test", "mock-chat", "embed-test", "none", "required", "auto", "function"]),
)


@st.composite
def hostile_requests(draw: st.DrawFn, path: str) -> tuple[bytes, dict[str, str]]:
    body = copy.deepcopy(draw(st.sampled_from(_BASES[path])))
    body["model"] = draw(st.sampled_from(ENDPOINT_MODELS[path]))
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        paths = _paths(body)  # tool schemas included: the mock (behind the fake upstream too) reads them
        target = draw(st.sampled_from(paths)) if paths and draw(st.booleans()) else (draw(any_text),)
        container = body
        for key in target[:-1]:
            container = container[key] if isinstance(container, dict | list) else None
        if isinstance(container, dict) or (isinstance(container, list) and target[-1] < len(container)):
            _set(body, target, copy.deepcopy(draw(_values)))
    raw_kind = draw(st.sampled_from(["none"] * 8 + ["literal", "duplicate", "truncate", "invalid_utf8"]))
    if raw_kind in ("literal", "invalid_utf8"):
        paths = _paths(body)
        if paths:
            where = draw(st.sampled_from(paths))
            _set(body, where, _RAW)
    raw = dumps(body)
    marker = dumps(_RAW)
    if raw_kind == "literal":
        raw = raw.replace(marker, draw(odd_literals))
    elif raw_kind == "invalid_utf8":
        raw = raw.replace(marker, b'"' + draw(st.binary(min_size=1, max_size=8)) + b'\xff"')
    elif raw_kind == "duplicate":
        raw = b'{"model": ' + dumps(draw(json_values)) + b", " + raw[1:]
    elif raw_kind == "truncate":
        raw = raw[: draw(st.integers(min_value=0, max_value=max(0, len(raw) - 1)))]
    headers = dict(JSON_HEADERS)
    for name in draw(st.lists(st.sampled_from(_IDENTITY_HEADERS), max_size=2, unique=True)):
        headers[name] = draw(_header_values)
    return raw, headers


@pytest.fixture(scope="module")
def client(fuzz_gateway: RunningGateway) -> httpx.Client:
    with httpx.Client(base_url=fuzz_gateway.url, timeout=30) as c:
        yield c


@pytest.mark.parametrize("path", list(_BASES))
def test_fuzz_hostile_bodies_get_a_2xx_or_an_openai_shaped_4xx(client: httpx.Client, path: str) -> None:
    @fuzz_settings(examples=100)
    @given(request=hostile_requests(path))
    def run(request: tuple[bytes, dict[str, str]]) -> None:
        raw, headers = request
        resp = client.post(path, content=raw, headers={k: v.encode("latin-1") for k, v in headers.items()})
        assert_clean(resp, (raw[:400], headers))

    run()
