"""A body with a key still cannot make the parser burn the worker: arrays and objects are counted first.

orjson spends ~0.3 µs per array or object, so 1.2 million ``[]`` in 3.6 MB cost ~350 ms of the
event loop before any guard ran. The count is bounded before parsing; brackets inside strings
(pasted code) do not count.
"""

from __future__ import annotations

import json
import re
import resource

import orjson
import pytest

from gateway.errors import BadRequest
from gateway.http.validate import MAX_CONTAINERS, MAX_EMBEDDING_VALUES, MAX_VALUES, parse_body
from tests.core.test_core_bad_input import assert_error, post

CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "hi"}]}


def _hostile(n: int) -> bytes:
    return orjson.dumps(CHAT)[:-1] + b',"x":[' + b",".join([b"[]"] * n) + b"]}"


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_a_body_over_the_container_bound_is_refused_before_it_is_parsed() -> None:
    raw = _hostile(1_200_000)
    started = _cpu()
    with pytest.raises(BadRequest) as caught:
        parse_body(raw)
    assert _cpu() - started < 0.1  # parsing it costs ~0.35 s here
    assert caught.value.code == "content_too_complex"
    assert f"{MAX_CONTAINERS:,}" in caught.value.message


def test_brackets_inside_strings_do_not_count() -> None:
    code = 'f(a[1]) { x[2] = "[{"; }\\\\ ' * 20_000  # 80,000 brackets, all inside one string
    body = {**CHAT, "messages": [{"role": "user", "content": code}]}
    assert parse_body(orjson.dumps(body)) == body


def test_a_body_at_the_bound_is_parsed() -> None:
    # The body, messages, the message and "x" are four; each "[]" in "x" is one more.
    raw = _hostile(MAX_CONTAINERS - 4)
    assert len(parse_body(raw)["x"]) == MAX_CONTAINERS - 4
    with pytest.raises(BadRequest):
        parse_body(_hostile(MAX_CONTAINERS - 3))


def test_an_authenticated_caller_gets_an_openai_shaped_400_that_says_not_to_retry(gateway) -> None:
    resp = post(gateway, _hostile(21_000))  # 63 KB: under the test gateway's body limit
    assert_error(resp, 400, "content_too_complex")
    assert resp.headers["x-should-retry"] == "false"


def test_a_hostile_body_is_refused_from_its_first_kilobytes() -> None:
    """3.6 MB of brackets: the count stops at the first prefix over the bound (the number
    reported is that prefix's), so the refusal does not scan the whole body."""
    raw = orjson.dumps(CHAT)[:-1] + b',"x":[' + b"[" * 1000 + b"]" * 1000 + b"," + b"[]," * 1_200_000 + b"1]}"
    with pytest.raises(BadRequest) as caught:
        parse_body(raw)
    reported = int(re.search(r"holds ([\d,]+) or more", caught.value.message)[1].replace(",", ""))
    assert MAX_CONTAINERS < reported < 100_000 < 1_200_000


@pytest.mark.parametrize("inside", [1, 50_000, 700_000])
def test_containers_after_a_long_string_of_brackets_still_count(inside: int) -> None:
    """Brackets inside a long first string fill the early prefixes without counting; the real
    containers after it are still found (a later, longer prefix), and one under is parsed."""
    head = orjson.dumps({**CHAT, "code": "[{" * inside})[:-1]
    over = head + b',"x":[' + b",".join([b"[]"] * (MAX_CONTAINERS - 3)) + b"]}"
    with pytest.raises(BadRequest) as caught:
        parse_body(over)
    assert caught.value.code == "content_too_complex"
    fits = head + b',"x":[' + b",".join([b"[]"] * (MAX_CONTAINERS - 4)) + b"]}"
    assert len(parse_body(fits)["x"]) == MAX_CONTAINERS - 4


@pytest.mark.parametrize(
    "values",
    [
        ["a"] * (MAX_VALUES + 1),
        ["a", 1] * (MAX_VALUES // 2 + 1),
        [1] * (MAX_VALUES + 1),
        [","] * (MAX_VALUES + 1),
    ],
    ids=["strings", "strings-and-numbers", "numbers", "comma-strings"],
)
def test_a_body_over_the_value_bound_is_refused_before_it_is_parsed(values: list[object]) -> None:
    """A million ``"a"`` (4 MB) cost orjson 50-250 ms to parse; values are bounded first."""
    for raw in (orjson.dumps({**CHAT, "x": values}), json.dumps({**CHAT, "x": values}).encode()):
        with pytest.raises(BadRequest) as caught:
            parse_body(raw)
        assert caught.value.code == "content_too_complex" and "JSON values" in caught.value.message


def test_a_body_at_the_value_bound_is_parsed_and_embeddings_may_carry_more() -> None:
    fits = orjson.dumps({**CHAT, "x": ["a"] * (MAX_VALUES - 10)})
    assert len(parse_body(fits)["x"]) == MAX_VALUES - 10
    tokens = orjson.dumps({"model": "e", "input": [[1] * 1000] * 300})  # 300,000 token ids
    with pytest.raises(BadRequest):
        parse_body(tokens)
    assert len(parse_body(tokens, MAX_EMBEDDING_VALUES)["input"]) == 300
    # commas inside strings are not values
    prose = orjson.dumps({**CHAT, "x": "a, b, " * (MAX_VALUES + 1)})
    assert parse_body(prose)["x"].startswith("a, b")


def test_a_short_body_is_still_held_to_a_lower_value_bound() -> None:
    """Bodies no longer than a bound skip its count (they cannot exceed it); the skip follows
    the bound the caller gives, so a short body over a small bound is still refused."""
    raw = b'{"model":"m","x":[1,2,3,4,5,6,7]}'
    with pytest.raises(BadRequest) as caught:
        parse_body(raw, max_values=5)
    assert caught.value.code == "content_too_complex"
    assert parse_body(raw, max_values=len(raw))["x"] == [1, 2, 3, 4, 5, 6, 7]
