"""Card and SSN recognizers that also see a number glued to ``_``.

Presidio's card and SSN patterns are bounded by ``\\b``, and ``_`` is a word character: in
``refund_4111111111111111`` or ``ssn_078-05-1120`` (an id, a log key, a file name) there is no
boundary between ``_`` and the digits, so a Luhn-valid card or an SSN passed unredacted. Here
each pattern's outer ``\\b`` is replaced by "no letter or digit on that side": ``_`` counts as
a boundary, a letter or digit still does not (``x4111111111111111``, a hex hash, a longer
digit run stay what they were). Everything else (the groups, Luhn, Presidio's invalid SSN
list, the scores) is Presidio's own.
"""

from __future__ import annotations

from typing import Any

from presidio_analyzer import Pattern
from presidio_analyzer.predefined_recognizers import CreditCardRecognizer, UsSsnRecognizer

#: Not after / before a letter or digit (``\w`` less ``_``).
_LEFT = r"(?<![^\W_])"
_RIGHT = r"(?![^\W_])"


def unglued(regex: str) -> str:
    """``regex`` with a leading and a trailing ``\\b`` made to accept ``_`` as a boundary."""
    if regex.startswith(r"\b"):
        regex = _LEFT + regex[2:]
    if regex.endswith(r"\b") and not regex.endswith(r"\\b"):
        regex = regex[:-2] + _RIGHT
    return regex


def _patterns(stock: list[Any]) -> list[Pattern]:
    return [Pattern(p.name, unglued(p.regex), p.score) for p in stock]


class GluedCardRecognizer(CreditCardRecognizer):
    """Presidio's card recognizer; a card glued to ``_`` is found too."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(patterns=_patterns(CreditCardRecognizer.PATTERNS), **kw)


class GluedSsnRecognizer(UsSsnRecognizer):
    """Presidio's SSN recognizer; an SSN glued to ``_`` is found too."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(patterns=_patterns(UsSsnRecognizer.PATTERNS), **kw)
