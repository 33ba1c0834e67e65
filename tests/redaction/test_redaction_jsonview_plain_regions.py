"""``JsonPieces.regions`` finds the strings of a source without backslashes with ``str.find``
alone: it must answer exactly what the regex loop answers (regions and lexer state), for
whole documents and for stream segments that start or end inside a string."""

from __future__ import annotations

import random

import orjson

from gateway.redaction.jsonview import JsonPieces


def _both(source: str, in_string: bool) -> tuple[tuple[list[tuple[int, int]], bool], ...]:
    plain, regex = JsonPieces(), JsonPieces()
    plain.in_string = regex.in_string = in_string
    return (plain._plain_regions(source), plain.in_string), (regex._escaped_regions(source), regex.in_string)


def test_plain_regions_equal_the_regex_loop_on_generated_sources() -> None:
    rng = random.Random(21)
    alphabet = ['"', '"', "a", "1", " ", ":", ",", "{", "}", "[", "]", "é", "\n"]
    for _ in range(5000):
        source = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24)))
        for in_string in (False, True):
            plain, regex = _both(source, in_string)
            assert plain == regex, (source, in_string)


def test_plain_regions_equal_the_regex_loop_on_a_tool_answer() -> None:
    answer = orjson.dumps(
        {"order_id": "ORD-1001", "email": "jane.doe@example.com", "total": 250.0, "items": ["Blender"]}
    ).decode()
    for cut in range(len(answer) + 1):  # every split of the answer into two stream segments
        head, tail = answer[:cut], answer[cut:]
        plain, regex = JsonPieces(), JsonPieces()
        assert plain._plain_regions(head) == regex._escaped_regions(head)
        assert plain.in_string == regex.in_string
        assert plain._plain_regions(tail) == regex._escaped_regions(tail)
        assert plain.in_string == regex.in_string


def test_a_source_with_a_backslash_takes_the_escape_aware_loop() -> None:
    source = '{"a": "say \\"hi\\"", "b": "x"}'
    assert JsonPieces().regions(source) == [(2, 3), (7, 17), (21, 22), (26, 27)]
