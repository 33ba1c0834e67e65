"""Matching a client's ``pattern`` regex at a bounded, deterministic cost.

``re`` backtracks: a tool schema's ``^(a+)+$`` takes a second on 24 characters and doubles
with each one more, and ``(a|a)(a|a)...`` or ``\\w*\\w*\\w*...`` need no nesting to explode.
The mock never runs a client's regex with ``re``. It compiles the pattern's parse tree
(``wardgate_mock.syntax``, which reads ``re``'s syntax) to a Thompson NFA (at most
``MAX_STATES`` states) and simulates it breadth-first (a Pike VM without captures: only
*whether* it matches), so a search costs at most text length × states steps, and every
step is paid from the answer's ``Budget``: a hostile pattern costs the same small bound
however it is built, and the outcome depends on counts, never on a clock.

Beyond it (``compile_pattern`` gives None): lookarounds, back-references, conditionals,
possessive and atomic groups (they refuse matches an NFA accepts) and the locale flag.
Case-insensitive matching compares a character, its lower and its upper case (``re`` also
knows a few special folds); ``\\d``, ``\\w`` and ``\\s`` follow ``re``'s Unicode or ASCII rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from wardgate_mock.budget import Budget
from wardgate_mock.syntax import MAXREPEAT, parse

#: NFA states per pattern: ``x{1000}`` needs 1000; beyond this a pattern is not checked.
MAX_STATES = 2_000
#: Longer patterns are not parsed at all (parsing is linear, but the text is the client's).
MAX_PATTERN_CHARS = 1_000

_CHAR, _EPS, _ASSERT, _MATCH = range(4)
_Pred = Callable[[str], bool]


class _Unsupported(Exception):
    """The pattern uses something the NFA cannot decide (or is too large)."""


class SafePattern:
    """One compiled pattern; ``search`` answers like ``re.search(...) is not None``."""

    __slots__ = ("_args", "_kinds", "_outs", "_start")

    def __init__(self, kinds: list[int], args: list[Any], outs: list[list[int]], start: int) -> None:
        self._kinds, self._args, self._outs, self._start = kinds, args, outs, start

    def search(self, text: str, budget: Budget) -> bool:
        """Whether the pattern matches somewhere in ``text``; False once the budget is spent."""
        if budget.steps <= 0:
            return False
        kinds, args, outs = self._kinds, self._args, self._outs
        marks = [-1] * len(kinds)
        current: list[int] = []
        n = len(text)
        for pos in range(n + 1):
            steps = self._closure(self._start, pos, text, current, marks)
            if any(kinds[s] == _MATCH for s in current):
                return True
            if pos == n:
                break
            ch = text[pos]
            following: list[int] = []
            for s in current:
                if kinds[s] == _CHAR and args[s](ch):
                    steps += self._closure(outs[s][0], pos + 1, text, following, marks)
            if not budget.take_steps(steps + len(current)):
                return False
            current = following
        return False

    def _closure(self, state: int, pos: int, text: str, into: list[int], marks: list[int]) -> int:
        """Add ``state`` and what it reaches without consuming a character; return the steps."""
        kinds, args, outs = self._kinds, self._args, self._outs
        stack = [state]
        steps = 0
        while stack:
            s = stack.pop()
            if marks[s] == pos:
                continue
            marks[s] = pos
            steps += 1
            kind = kinds[s]
            if kind == _EPS:
                stack.extend(outs[s])
            elif kind == _ASSERT:
                if args[s](text, pos):
                    stack.append(outs[s][0])
            else:
                into.append(s)
        return steps


def compile_pattern(pattern: str, budget: Budget) -> SafePattern | None:
    """The pattern as a ``SafePattern``; None when it is invalid, unsupported or too large.

    Parsing and building are paid from ``budget`` too (a schema may hold many patterns).
    """
    if len(pattern) > MAX_PATTERN_CHARS or not budget.take_steps(len(pattern) + 1):
        return None
    try:
        parsed = parse(pattern)
        builder = _Builder(budget)
        start = builder.sequence(list(parsed), builder.add(_MATCH, None, []), parsed.state.flags)
    except (re.error, _Unsupported, RecursionError, OverflowError, ValueError, TypeError, IndexError):
        return None
    return SafePattern(builder.kinds, builder.args, builder.outs, start)


class _Builder:
    """Builds the NFA back to front: each piece is compiled knowing the state that follows it."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.kinds: list[int] = []
        self.args: list[Any] = []
        self.outs: list[list[int]] = []

    def add(self, kind: int, arg: Any, outs: list[int]) -> int:
        if len(self.kinds) >= MAX_STATES or not self.budget.take_steps(1):
            raise _Unsupported("too many states")
        self.kinds.append(kind)
        self.args.append(arg)
        self.outs.append(outs)
        return len(self.kinds) - 1

    def sequence(self, items: list[tuple[Any, Any]], nxt: int, flags: int) -> int:
        for op, arg in reversed(items):
            nxt = self.item(str(op), arg, nxt, flags)
        return nxt

    def item(self, op: str, arg: Any, nxt: int, flags: int) -> int:
        if op in ("LITERAL", "NOT_LITERAL", "ANY", "IN", "CATEGORY"):
            return self.add(_CHAR, _predicate(op, arg, flags), [nxt])
        if op == "AT":
            return self.add(_ASSERT, _anchor(str(arg), flags), [nxt])
        if op == "SUBPATTERN":
            _group, add_flags, del_flags, sub = arg
            return self.sequence(list(sub), nxt, (flags | add_flags) & ~del_flags)
        if op == "BRANCH":
            starts = [self.sequence(list(alt), nxt, flags) for alt in arg[1]]
            return self.add(_EPS, None, starts)
        if op in ("MAX_REPEAT", "MIN_REPEAT"):  # laziness does not change *whether* it matches
            low, high, sub = arg
            return self.repeat(list(sub), int(low), int(high), nxt, flags)
        raise _Unsupported(op)  # ASSERT(_NOT), GROUPREF(_EXISTS), ATOMIC_GROUP, POSSESSIVE_REPEAT

    def repeat(self, sub: list[tuple[Any, Any]], low: int, high: int, nxt: int, flags: int) -> int:
        if high == MAXREPEAT:
            loop = self.add(_EPS, None, [])
            self.outs[loop] = [self.sequence(sub, loop, flags), nxt]
            tail = loop
        else:
            tail = nxt
            for _ in range(high - low):  # x{0,3} → (x(x(x)?)?)?
                if not self.budget.take_steps(1):
                    raise _Unsupported("budget")
                tail = self.add(_EPS, None, [self.sequence(sub, tail, flags), nxt])
        for _ in range(low):
            if not self.budget.take_steps(1):  # an empty group repeated 10**9 times adds no state
                raise _Unsupported("budget")
            tail = self.sequence(sub, tail, flags)
        return tail


def _is_word(ch: str, ascii_only: bool) -> bool:
    return (ch.isascii() or not ascii_only) and (ch.isalnum() or ch == "_")


_CATEGORIES: dict[str, Callable[[str, bool], bool]] = {
    "CATEGORY_DIGIT": lambda ch, a: ch.isdecimal() and (ch.isascii() or not a),
    "CATEGORY_WORD": lambda ch, a: _is_word(ch, a),
    "CATEGORY_SPACE": lambda ch, a: ch in " \t\n\r\f\v" if a else ch.isspace(),
}


def _category(name: str, flags: int) -> _Pred:
    ascii_only = bool(flags & re.ASCII)
    if name.startswith("CATEGORY_NOT_"):
        positive = _CATEGORIES["CATEGORY_" + name[len("CATEGORY_NOT_") :]]
        return lambda ch: not positive(ch, ascii_only)
    test = _CATEGORIES.get(name)
    if test is None:
        raise _Unsupported(name)  # LINEBREAK and locale categories
    return lambda ch: test(ch, ascii_only)


def _predicate(op: str, arg: Any, flags: int) -> _Pred:
    if flags & re.LOCALE:
        raise _Unsupported("locale")
    if op == "ANY":
        return (lambda ch: True) if flags & re.DOTALL else (lambda ch: ch != "\n")
    if op == "CATEGORY":
        return _category(str(arg), flags)
    if op == "LITERAL":
        return _fold(_equals(chr(arg)), flags)
    if op == "NOT_LITERAL":
        same = _fold(_equals(chr(arg)), flags)
        return lambda ch: not same(ch)
    items = list(arg)
    negate = bool(items) and str(items[0][0]) == "NEGATE"
    tests: list[_Pred] = []
    for sub_op, sub_arg in items[1:] if negate else items:
        kind = str(sub_op)
        if kind == "RANGE":
            lo, hi = sub_arg
            tests.append(_between(lo, hi))
        elif kind == "LITERAL":
            tests.append(_equals(chr(sub_arg)))
        elif kind == "CATEGORY":
            tests.append(_category(str(sub_arg), flags))
        else:
            raise _Unsupported(kind)
    member = _fold(lambda ch: any(t(ch) for t in tests), flags)
    return (lambda ch: not member(ch)) if negate else member


def _equals(c: str) -> _Pred:
    return lambda ch: ch == c


def _between(lo: int, hi: int) -> _Pred:
    return lambda ch: lo <= ord(ch) <= hi


def _fold(test: _Pred, flags: int) -> _Pred:
    if not flags & re.IGNORECASE:
        return test
    return lambda ch: test(ch) or test(ch.lower()[:1]) or test(ch.upper()[:1])


def _anchor(code: str, flags: int) -> Callable[[str, int], bool]:
    multiline = bool(flags & re.MULTILINE)
    ascii_only = bool(flags & re.ASCII)

    def boundary(text: str, pos: int) -> bool:
        before = pos > 0 and _is_word(text[pos - 1], ascii_only)
        after = pos < len(text) and _is_word(text[pos], ascii_only)
        return before != after

    anchors: dict[str, Callable[[str, int], bool]] = {
        "AT_BEGINNING_STRING": lambda text, pos: pos == 0,
        "AT_END_STRING": lambda text, pos: pos == len(text),
        "AT_BOUNDARY": boundary,
        "AT_NON_BOUNDARY": lambda text, pos: bool(text) and not boundary(text, pos),  # as re: never in ""
    }
    if multiline:
        anchors["AT_BEGINNING"] = lambda text, pos: pos == 0 or text[pos - 1] == "\n"
        anchors["AT_END"] = lambda text, pos: pos == len(text) or text[pos] == "\n"
    else:
        anchors["AT_BEGINNING"] = anchors["AT_BEGINNING_STRING"]
        anchors["AT_END"] = lambda text, pos: pos == len(text) or (pos == len(text) - 1 and text[pos] == "\n")
    found = anchors.get(code)
    if found is None:
        raise _Unsupported(code)
    return found
