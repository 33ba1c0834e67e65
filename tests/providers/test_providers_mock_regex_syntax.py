"""The mock's own regex parser reads Python's syntax exactly as ``re`` does.

``wardgate_mock/syntax.py`` replaces the stdlib's private parser (``re._parser``) the mock used
to call. It must accept what ``re`` accepts, refuse what ``re`` refuses, and give the same
tree, shaped the same way (the example strings the mock builds follow the tree's shape).
The stdlib's private parser is used here as the oracle only: tests may lean on it, the
shipped packages do not.
"""

from __future__ import annotations

import re
import re._constants as re_constants  # the oracle's constants (tests only)
import re._parser as re_parser  # the oracle (tests only)
import warnings
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardgate_mock.syntax import MAX_DEPTH, MAXREPEAT, Unsupported, parse

_PIECES = [
    *"ab.|()[]^$*+?{}-,:\\dDwWsSbBAZ0123n",
    "(?:",
    "(?i)",
    "(?m)",
    "(?a)",
    "(?P<g>",
    "\\x41",
    "\\u00e9",
    "[^",
    "{2}",
    "{1,3}",
    "{,2}",
    "{,}",
    "(?#c)",
    "(?s:",
    "(?-i:",
    "(?i:",
    "é",
    "[a-c]",
    "\\.",
    "\\0",
    "\\101",
    "[^a]",
    "(a|bc)",
    "x{0}",
    "[\\w-]",
    "*?",
    "\\N{BULLET}",
]


def _norm(node: Any) -> Any:
    """The oracle's tree in plain values: its named constants as names (MAXREPEAT as a number)."""
    if isinstance(node, re_constants._NamedIntConstant):
        return int(node) if str(node) == "MAXREPEAT" else str(node)
    if isinstance(node, re_parser.SubPattern):
        return tuple(_norm(i) for i in node.data)
    if isinstance(node, list | tuple):
        return tuple(_norm(i) for i in node)
    return node


def _oracle(pattern: str) -> tuple[Any, int] | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tree = re_parser.parse(pattern)
        except (re.error, OverflowError, RecursionError):
            return None
    return _norm(tree), int(tree.state.flags)


def _ours(pattern: str) -> tuple[Any, int] | str | None:
    try:
        tree = parse(pattern)
    except Unsupported:
        return "unsupported"
    except (re.error, OverflowError):
        return None
    return _norm(list(tree)), int(tree.state.flags)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(_PIECES), min_size=1, max_size=9).map("".join))
def test_the_tree_is_the_stdlib_tree(pattern: str) -> None:
    ours = _ours(pattern)
    if ours != "unsupported":
        assert ours == _oracle(pattern), pattern


@pytest.mark.parametrize(
    "pattern",
    [
        "^ORD-\\d{4}$",
        "[A-Z]{2}-[0-9]{3,}",
        "(?i)^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$",
        "^\\+?[1-9]\\d{1,14}$",
        "^(?:https?://)?[\\w.-]+(?:/[\\w./-]*)?$",
        "a{,}",
        "[]a]",
        "[^]a]",
        "[a-]",
        "x{}",
        "x{1,2",
        "\\[\\]\\{\\}",
        "(?s:.)(?-i:a)",
        "(?P<name>a)|b",
        "\\0\\07\\101\\x41\\u0041\\U00000041\\N{LATIN SMALL LETTER A}",
        "ab|ac|ad",
        "a|b|[cd]",
    ],
)
def test_patterns_tool_schemas_use_parse_like_the_stdlib(pattern: str) -> None:
    assert _ours(pattern) == _oracle(pattern) != None  # noqa: E711


@pytest.mark.parametrize(
    "pattern", ["(", ")", "[a", "a**", "*a", "x{3,1}", "\\q", "(?i)a(?m)", "[b-a]", "(?P<1>a)", "\\N{NOPE}"]
)
def test_what_re_refuses_is_refused(pattern: str) -> None:
    assert _oracle(pattern) is None
    assert _ours(pattern) is None


@pytest.mark.parametrize(
    "pattern", ["(?=a)", "(?!a)", "(?<=a)b", "(?<!a)b", "(a)\\1", "(?P<g>a)(?P=g)", "(?>a)", "a*+", "(?x)a b"]
)
def test_what_the_matcher_cannot_decide_is_unsupported(pattern: str) -> None:
    assert _ours(pattern) == "unsupported"


def test_nesting_past_the_cap_is_unsupported_not_a_recursion_error() -> None:
    assert _ours("(" * (MAX_DEPTH + 5) + "a" + ")" * (MAX_DEPTH + 5)) == "unsupported"
    assert _ours("(" * 50 + "a" + ")" * 50) == _oracle("(" * 50 + "a" + ")" * 50)


def test_maxrepeat_is_the_stdlib_value() -> None:
    assert int(re_constants.MAXREPEAT) == MAXREPEAT
