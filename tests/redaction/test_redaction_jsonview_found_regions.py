"""``JsonPieces.regions`` finds the strings of a source with ``str.find`` (a quote after an odd
run of backslashes is escaped): it must answer exactly what the regex loop answers (regions
and lexer state), for whole documents and for stream segments that start or end inside a
string or an escape run; a segment ending in a backslash keeps the regex loop."""

from __future__ import annotations

import random

import orjson

from gateway.redaction.jsonview import JsonPieces


def _both(source: str, in_string: bool) -> tuple[tuple[list[tuple[int, int]], bool], ...]:
    plain, regex = JsonPieces(), JsonPieces()
    plain.in_string = regex.in_string = in_string
    return (plain._found_regions(source), plain.in_string), (regex._escaped_regions(source), regex.in_string)


def test_plain_regions_equal_the_regex_loop_on_generated_sources() -> None:
    rng = random.Random(21)
    alphabet = ['"', '"', "\\", "\\", "a", "1", " ", ":", ",", "{", "}", "[", "]", "é", "\n"]
    for _ in range(20000):
        source = "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 24)))
        if source.endswith("\\"):  # the regex loop's own case (regions() dispatches it there)
            continue
        for in_string in (False, True):
            plain, regex = _both(source, in_string)
            assert plain == regex, (source, in_string)


def test_plain_regions_equal_the_regex_loop_on_a_tool_answer() -> None:
    answer = orjson.dumps(
        {
            "order_id": "ORD-1001",
            "email": "jane.doe@example.com",
            "note": 'she said "cracked"\n\\ C:\\path\\',
            "items": ["Blender"],
        }
    ).decode()
    for cut in range(len(answer) + 1):  # every split of the answer into two stream segments
        head, tail = answer[:cut], answer[cut:]
        if head.endswith("\\"):
            continue
        plain, regex = JsonPieces(), JsonPieces()
        assert plain._found_regions(head) == regex._escaped_regions(head)
        assert plain.in_string == regex.in_string
        assert plain._found_regions(tail) == regex._escaped_regions(tail)
        assert plain.in_string == regex.in_string


def test_escaped_quotes_stay_inside_their_string() -> None:
    source = '{"a": "say \\"hi\\"", "b": "x\\\\"}'
    assert JsonPieces().regions(source) == [(2, 3), (7, 17), (21, 22), (26, 29)]
    assert JsonPieces()._escaped_regions(source) == [(2, 3), (7, 17), (21, 22), (26, 29)]
