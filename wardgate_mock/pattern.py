"""A string matching a JSON-schema ``pattern``, for arguments the user's words do not fill.

Built from the regex's parse tree (``wardgate_mock.syntax``, shaped like the stdlib's):
literals as written, the first character of each class, each repeat at its minimum, the
first branch of each alternation.
That covers the patterns tool schemas use (ids like ``^ORD-\\d{4}$``, codes, phone numbers);
lookarounds and back-references are beyond it and yield None, and so does an example longer
than ``MAX_EXAMPLE_CHARS`` (``x{4000000000}`` must not allocate gigabytes).
"""

from __future__ import annotations

import re
from typing import Any

from wardgate_mock.syntax import parse

#: The longest example built; a pattern asking for more gets None (checked before repeating).
MAX_EXAMPLE_CHARS = 1_000


def example_for(pattern: str) -> str | None:
    """The shortest simple string matching ``pattern`` (None for what this cannot build)."""
    try:
        return _build(parse(pattern))
    except (re.error, ValueError, KeyError, TypeError, IndexError, RecursionError):
        return None


def _build(items: Any) -> str:
    out = []
    for op, arg in items:
        name = str(op)
        if name == "LITERAL":
            out.append(chr(arg))
        elif name == "NOT_LITERAL":
            out.append("a" if chr(arg) != "a" else "b")
        elif name == "ANY":
            out.append("a")
        elif name == "IN":
            out.append(_pick_in(arg))
        elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
            low, _high, sub = arg
            piece = _build(sub)
            if len(piece) * low > MAX_EXAMPLE_CHARS:
                raise ValueError("example too long")
            out.append(piece * max(low, 0))
        elif name == "SUBPATTERN":
            out.append(_build(arg[-1]))
        elif name == "BRANCH":
            out.append(_build(arg[1][0]))
        elif name == "CATEGORY":
            out.append(_CATEGORY_CHARS[str(arg)])
        elif name != "AT":  # anchors add nothing; anything else (lookarounds, groupref) is beyond us
            raise ValueError(name)
    built = "".join(out)
    if len(built) > MAX_EXAMPLE_CHARS:
        raise ValueError("example too long")
    return built


_CATEGORY_CHARS = {
    "CATEGORY_DIGIT": "0",
    "CATEGORY_WORD": "a",
    "CATEGORY_SPACE": " ",
    "CATEGORY_NOT_DIGIT": "a",
    "CATEGORY_NOT_WORD": "-",
    "CATEGORY_NOT_SPACE": "a",
}


def _pick_in(items: list[tuple[Any, Any]]) -> str:
    if items and str(items[0][0]) == "NEGATE":
        excluded = "".join(_build([i]) if str(i[0]) != "RANGE" else chr(i[1][0]) for i in items[1:])
        found = next((c for c in "aA0_-x !" if c not in excluded), None)
        if found is None:
            raise ValueError("every candidate excluded")
        return found
    op, arg = items[0]
    if str(op) == "RANGE":
        return chr(arg[0])
    return _build([(op, arg)])
