"""A parser of Python's regex syntax into the parse tree the mock's matcher reads.

Two parts of the mock need a client's ``pattern`` as a tree, not as a compiled ``re`` object:
``wardgate_mock.regex`` builds a linear-time NFA from it (running a client's pattern with
``re`` can backtrack for minutes) and ``wardgate_mock.pattern`` builds an example string that
matches it. Python offers no public parse tree, so this module reads the syntax ``re``
accepts (the dialect the ``jsonschema`` validator a client runs uses) and gives the same
shape of tree as the stdlib's private parser: a list of ``(op, arg)`` pairs, ``op`` one of
``LITERAL``, ``NOT_LITERAL``, ``ANY``, ``IN``, ``CATEGORY``, ``AT``, ``SUBPATTERN``,
``BRANCH``, ``MAX_REPEAT``, ``MIN_REPEAT``, with the pattern's flags on ``.state.flags``.

An invalid pattern raises ``re.error``, as ``re.compile`` would. What the matcher could not
decide anyway raises ``Unsupported`` (a ``ValueError``): back-references, lookarounds,
conditionals, atomic groups, possessive repeats, verbose and locale flags, nesting deeper
than ``MAX_DEPTH``. ``tests/providers/test_providers_mock_regex_syntax.py`` holds the tree to
the stdlib parser's, tree for tree (``syntax_shape.py`` shapes it the same way), and
``test_providers_mock_hostile.py`` the matcher built from it to ``re.search``'s answers.
"""

from __future__ import annotations

import re
import unicodedata

from wardgate_mock.syntax_shape import Item, plain_group, shape_branch, shape_set

#: ``{m,}`` and ``*`` carry this as their upper bound (the stdlib's value).
MAXREPEAT = 4294967295
#: Groups nested deeper than this are not parsed (the matcher would need a deep recursion).
MAX_DEPTH = 100

_FLAGS = {
    "a": re.ASCII,
    "i": re.IGNORECASE,
    "L": re.LOCALE,
    "m": re.MULTILINE,
    "s": re.DOTALL,
    "u": re.UNICODE,
    "x": re.VERBOSE,
}
_CATEGORIES = {
    "d": "CATEGORY_DIGIT",
    "D": "CATEGORY_NOT_DIGIT",
    "s": "CATEGORY_SPACE",
    "S": "CATEGORY_NOT_SPACE",
    "w": "CATEGORY_WORD",
    "W": "CATEGORY_NOT_WORD",
}
_ANCHORS = {"A": "AT_BEGINNING_STRING", "Z": "AT_END_STRING", "b": "AT_BOUNDARY", "B": "AT_NON_BOUNDARY"}
_CONTROL = {"a": 7, "f": 12, "n": 10, "r": 13, "t": 9, "v": 11}
_HEX = {"x": 2, "u": 4, "U": 8}
_OCTAL = "01234567"
_QUANTIFIER = re.compile(r"\{(\d*)(?:(,)(\d*))?\}")


class Unsupported(ValueError):
    """Valid syntax the mock's matcher does not decide (or a tree too deep to build)."""


class _State:
    __slots__ = ("flags",)

    def __init__(self, flags: int) -> None:
        self.flags = flags


class SubPattern(list[Item]):
    """The items of a whole pattern, and its flags (``state.flags``), like the stdlib's."""

    def __init__(self, items: list[Item], flags: int) -> None:
        super().__init__(items)
        self.state = _State(flags)


def parse(pattern: str) -> SubPattern:
    """``pattern``'s parse tree; ``re.error`` when invalid, ``Unsupported`` beyond the matcher."""
    parser = _Parser(pattern)
    flags = parser.global_flags()
    items = parser.alternation(0)
    if parser.pos < len(pattern):
        raise re.error("unbalanced parenthesis", pattern, parser.pos)
    if flags & re.LOCALE:
        raise re.error("bad inline flags: cannot use 'L' flag with a str pattern")
    if flags & re.ASCII and flags & re.UNICODE:
        raise re.error("bad inline flags: flags 'a', 'u' and 'L' are incompatible")
    if not flags & re.ASCII:
        flags |= re.UNICODE
    return SubPattern(items, flags)


class _Parser:
    def __init__(self, pattern: str) -> None:
        self.text = pattern
        self.pos = 0
        self.groups = 0
        self.names: set[str] = set()

    def _peek(self, ahead: int = 0) -> str:
        at = self.pos + ahead
        return self.text[at] if at < len(self.text) else ""

    def _error(self, message: str) -> re.error:
        return re.error(message, self.text, self.pos)

    def _skip_comments(self) -> None:
        """``(?#...)`` is nothing at all: not an item, not a break between an item and its repeat."""
        while self.text.startswith("(?#", self.pos):
            end = self.text.find(")", self.pos)
            if end < 0:
                raise self._error("missing ), unterminated comment")
            self.pos = end + 1

    def global_flags(self) -> int:
        """Inline flags at the very start (``(?i)``): they apply to the whole pattern."""
        flags = 0
        self._skip_comments()
        while self.text.startswith("(?", self.pos):
            end = self.pos + 2
            while end < len(self.text) and self.text[end] in _FLAGS:
                end += 1
            if end == self.pos + 2 or not self.text.startswith(")", end):
                break
            flags |= self._flag_bits(self.text[self.pos + 2 : end])
            self.pos = end + 1
            self._skip_comments()
        return flags

    def _flag_bits(self, letters: str) -> int:
        bits = 0
        for letter in letters:
            bits |= _FLAGS[letter]
        if bits & re.VERBOSE:
            raise Unsupported("verbose patterns")
        return bits

    def alternation(self, depth: int) -> list[Item]:
        if depth > MAX_DEPTH:
            raise Unsupported("nested too deep")
        branches = [self.sequence(depth)]
        while self._peek() == "|":
            self.pos += 1
            branches.append(self.sequence(depth))
        return branches[0] if len(branches) == 1 else shape_branch(branches)

    def sequence(self, depth: int) -> list[Item]:
        items: list[Item] = []
        self._skip_comments()
        while self.pos < len(self.text) and self._peek() not in "|)":
            items.append(self.repeated(self.atom(depth)))
            self._skip_comments()
        out: list[Item] = []
        for item in items:  # a plain (?:...) group is just its items
            inner = plain_group(item)
            out.extend([item] if inner is None else inner)
        return out

    def atom(self, depth: int) -> Item:
        ch = self._peek()
        if ch in "*+?" or (ch == "{" and _QUANTIFIER.match(self.text, self.pos) and self._counted()):
            raise self._error("nothing to repeat")
        self.pos += 1
        if ch == "(":
            return self.group(depth)
        if ch == "[":
            return self.char_class()
        if ch == ".":
            return ("ANY", None)
        if ch == "^":
            return ("AT", "AT_BEGINNING")
        if ch == "$":
            return ("AT", "AT_END")
        if ch == "\\":
            return self.escape(in_class=False)
        return ("LITERAL", ord(ch))

    def _counted(self) -> bool:
        """Whether the ``{...}`` at ``pos`` is a repeat count (else its brace is a literal)."""
        found = _QUANTIFIER.match(self.text, self.pos)
        return found is not None and bool(found.group(1) or found.group(2))

    def repeated(self, item: Item) -> Item:
        self._skip_comments()
        bounds = self._quantifier()
        if bounds is None:
            return item
        if item[0] == "AT":
            raise self._error("nothing to repeat")
        low, high = bounds
        op = "MAX_REPEAT"
        if self._peek() == "?":
            self.pos += 1
            op = "MIN_REPEAT"
        elif self._peek() == "+":
            raise Unsupported("possessive repeat")
        self._skip_comments()
        if self._peek() in ("*", "+", "?") or (self._peek() == "{" and self._counted()):
            raise self._error("multiple repeat")
        inner = plain_group(item)
        return (op, (low, high, [item] if inner is None else inner))

    def _quantifier(self) -> tuple[int, int] | None:
        ch = self._peek()
        if ch in ("*", "+", "?"):
            self.pos += 1
            return {"*": (0, MAXREPEAT), "+": (1, MAXREPEAT), "?": (0, 1)}[ch]
        if ch != "{" or not self._counted():
            return None
        found = _QUANTIFIER.match(self.text, self.pos)
        assert found is not None
        self.pos = found.end()
        low = int(found.group(1)) if found.group(1) else 0
        if not found.group(2):
            high = low
        else:
            high = int(found.group(3)) if found.group(3) else MAXREPEAT
        if low >= MAXREPEAT or (high != MAXREPEAT and high >= MAXREPEAT):
            raise OverflowError("the repetition number is too large")
        if high < low:
            raise self._error("min repeat greater than max repeat")
        return low, high

    def group(self, depth: int) -> Item:
        add = remove = 0
        number: int | None = None
        if self._peek() == "?":
            self.pos += 1
            kind = self._peek()
            if kind == ":":
                self.pos += 1
            elif kind == "P" and self._peek(1) == "<":
                self.pos += 2
                end = self.text.find(">", self.pos)
                name = self.text[self.pos : end] if end >= 0 else ""
                if not name.isidentifier() or name in self.names:
                    raise self._error(f"bad character in group name {name!r}")
                self.names.add(name)
                self.pos = end + 1
                self.groups += 1
                number = self.groups
            elif kind in _FLAGS or kind == "-":
                add, remove = self._scoped_flags()
            elif kind in ("=", "!", "<", ">", "(") or kind == "P":
                raise Unsupported("lookaround, atomic group, conditional or back-reference")
            else:
                raise self._error("unknown extension")
        else:
            self.groups += 1
            number = self.groups
        items = self.alternation(depth + 1)
        if self._peek() != ")":
            raise self._error("missing ), unterminated subpattern")
        self.pos += 1
        return ("SUBPATTERN", (number, add, remove, items))

    def _scoped_flags(self) -> tuple[int, int]:
        """``(?i:...)`` / ``(?-i:...)``: flags for this group only (the ``:`` is consumed)."""
        start = self.pos
        while self._peek() in _FLAGS and self._peek():
            self.pos += 1
        add = self._flag_bits(self.text[start : self.pos])
        remove = 0
        if self._peek() == "-":
            self.pos += 1
            start = self.pos
            while self._peek() in _FLAGS and self._peek():
                self.pos += 1
            remove = self._flag_bits(self.text[start : self.pos])
            if not remove or remove & (re.ASCII | re.LOCALE | re.UNICODE):
                raise self._error("bad inline flags")
        if self._peek() != ":":
            raise self._error("global flags not at the start of the expression")
        if add & re.LOCALE:
            raise self._error("bad inline flags: cannot use 'L' flag with a str pattern")
        self.pos += 1
        return add, remove

    def char_class(self) -> Item:
        items: list[Item] = []
        if self._peek() == "^":
            self.pos += 1
            items.append(("NEGATE", None))
        first = True
        while True:
            ch = self._peek()
            if not ch:
                raise self._error("unterminated character set")
            if ch == "]" and not first:
                self.pos += 1
                return shape_set(items)
            first = False
            low = self._class_member()
            if self._peek() == "-" and self._peek(1) not in ("]", ""):
                self.pos += 1
                high = self._class_member()
                if low[0] != "LITERAL" or high[0] != "LITERAL":
                    raise self._error("bad character range")
                if high[1] < low[1]:
                    raise self._error("bad character range")
                items.append(("RANGE", (low[1], high[1])))
            else:
                items.append(low)

    def _class_member(self) -> Item:
        ch = self._peek()
        self.pos += 1
        if ch == "\\":
            return self.escape(in_class=True)
        return ("LITERAL", ord(ch))

    def escape(self, *, in_class: bool) -> Item:
        ch = self._peek()
        if not ch:
            raise self._error("bad escape (end of pattern)")
        self.pos += 1
        if ch in _CATEGORIES:
            category: Item = ("CATEGORY", _CATEGORIES[ch])
            return category if in_class else ("IN", [category])
        if ch == "b" and in_class:
            return ("LITERAL", 8)
        if ch in _ANCHORS:
            if in_class:
                raise self._error(f"bad escape \\{ch}")
            return ("AT", _ANCHORS[ch])
        if ch in _CONTROL:
            return ("LITERAL", _CONTROL[ch])
        if ch in _HEX:
            digits = self.text[self.pos : self.pos + _HEX[ch]]
            if len(digits) != _HEX[ch] or any(d not in "0123456789abcdefABCDEF" for d in digits):
                raise self._error(f"incomplete escape \\{ch}{digits}")
            self.pos += _HEX[ch]
            code = int(digits, 16)
            if code > 0x10FFFF:
                raise self._error(f"bad escape \\{ch}{digits}")
            return ("LITERAL", code)
        if ch == "N":
            end = self.text.find("}", self.pos)
            if self._peek() != "{" or end < 0:
                raise self._error("missing {")
            try:
                code = ord(unicodedata.lookup(self.text[self.pos + 1 : end]))
            except KeyError:
                raise self._error("undefined character name") from None
            self.pos = end + 1
            return ("LITERAL", code)
        if ch.isdigit() and ch.isascii():
            return self._digits(ch, in_class)
        if ch.isascii() and ch.isalpha():
            raise self._error(f"bad escape \\{ch}")
        return ("LITERAL", ord(ch))

    def _digits(self, first: str, in_class: bool) -> Item:
        """``\\0``, ``\\012``, ``\\123`` (three octal digits): a character; any other digits
        outside a class: a group reference, which the matcher cannot decide."""
        digits = first
        if in_class or first == "0":
            if first not in _OCTAL:
                raise self._error(f"bad escape \\{first}")
            while len(digits) < 3 and self._peek() and self._peek() in _OCTAL:
                digits += self._peek()
                self.pos += 1
        elif (
            first in _OCTAL
            and self._peek()
            and self._peek() in _OCTAL
            and self._peek(1)
            and self._peek(1) in _OCTAL
        ):
            digits += self.text[self.pos : self.pos + 2]
            self.pos += 2
        else:
            raise Unsupported("back-reference")
        code = int(digits, 8)
        if code > 0o377:
            raise self._error(f"octal escape value \\{digits} outside of range 0-0o377")
        return ("LITERAL", code)
