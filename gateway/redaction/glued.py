"""Card and SSN recognizers that also see a number glued to ``_``.

Presidio's card and SSN patterns are bounded by ``\\b``, and ``_`` is a word character: in
``refund_4111111111111111`` or ``ssn_078-05-1120`` (an id, a log key, a file name) there is no
boundary between ``_`` and the digits, so a Luhn-valid card or an SSN passed unredacted. Here
each pattern's outer ``\\b`` is replaced by "no letter or digit on that side": ``_`` counts as
a boundary, a letter or digit still does not (``x4111111111111111``, a hex hash, a longer
digit run stay what they were). Everything else (the groups, Luhn, Presidio's invalid SSN
list, the scores) is Presidio's own. Those bounds cost the regex engine ~2x what ``\b`` does
(SSN's five patterns on 50 KB of digits: 9 -> 20 ms), so a text without ``_`` (where the two
mean the same) is searched with Presidio's own patterns.
"""

from __future__ import annotations

from typing import Any

from presidio_analyzer import Pattern, RecognizerResult
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


def _as(recognizer: Any, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """``results`` of the plain twin, tagged as ``recognizer``'s (Presidio's analyzer reads the id)."""
    for r in results:
        r.recognition_metadata[RecognizerResult.RECOGNIZER_NAME_KEY] = recognizer.name
        r.recognition_metadata[RecognizerResult.RECOGNIZER_IDENTIFIER_KEY] = recognizer.id
    return results


def _patterns(stock: list[Any]) -> list[Pattern]:
    return [Pattern(p.name, unglued(p.regex), p.score) for p in stock]


class GluedCardRecognizer(CreditCardRecognizer):
    """Presidio's card recognizer; a card glued to ``_`` is found too."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(patterns=_patterns(CreditCardRecognizer.PATTERNS), **kw)
        self._plain = CreditCardRecognizer(**kw)

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # type: ignore[no-untyped-def]  # Presidio's own signature, untyped upstream
        if "_" not in text:
            return _as(self, self._plain.analyze(text, entities, nlp_artifacts, regex_flags))
        return super().analyze(text, entities, nlp_artifacts, regex_flags)


class GluedSsnRecognizer(UsSsnRecognizer):
    """Presidio's SSN recognizer; an SSN glued to ``_`` is found too."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(patterns=_patterns(UsSsnRecognizer.PATTERNS), **kw)
        self._plain = UsSsnRecognizer(**kw)

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # type: ignore[no-untyped-def]  # Presidio's own signature, untyped upstream
        if "_" not in text:
            return _as(self, self._plain.analyze(text, entities, nlp_artifacts, regex_flags))
        return super().analyze(text, entities, nlp_artifacts, regex_flags)
