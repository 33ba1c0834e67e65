"""Our own Presidio recognizers: credentials and labelled identifiers Presidio does not know.

Why a recognizer class of our own rather than ``PatternRecognizer``: several formats are only
recognisable by what precedes them (``Bearer …``, ``aws_secret_access_key = …``,
``SSN: 123456789``) and the span to redact is the secret, not the label. ``PatternRecognizer``
reports the whole match; ``GroupPatternRecognizer`` reports capture group ``s`` when the
pattern has one. Patterns are case-sensitive unless they say otherwise (``AKIA`` is).

Every pattern is either bounded in length, or confined to one run of non-whitespace
characters (tokens), or delimited by markers (PEM blocks). The streaming redactor relies on
that: it only cuts at whitespace and holds back more than the longest bounded pattern.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

Validator = Callable[[str], bool]

_TOKEN = r"[A-Za-z0-9_-]"
_NOT_TOKEN_BEFORE = r"(?<![A-Za-z0-9_-])"
_NOT_TOKEN_AFTER = r"(?![A-Za-z0-9_-])"


def looks_random(token: str) -> bool:
    """A generated token, not a hyphenated English phrase (``sk-learn-compatible-wrapper``).

    Keys are base62/base64 noise: they contain a digit, or upper case letters inside words.
    Either alone is enough, so a key without a digit (rare, not impossible) is still found.
    """
    if any(c.isdigit() for c in token):
        return True
    inner_upper = sum(1 for i, c in enumerate(token) if c.isupper() and i > 0 and token[i - 1] not in "-_")
    return inner_upper >= 3


def has_digit(token: str) -> bool:
    return any(c.isdigit() for c in token)


def valid_ssn(value: str) -> bool:
    digits = "".join(c for c in value if c.isdigit())
    if len(digits) != 9 or len(set(digits)) == 1:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


@dataclass(frozen=True, slots=True)
class SecretPattern:
    entity: str
    regex: str
    score: float = 1.0
    flags: int = 0
    validator: Validator | None = None
    #: Literals one of which occurs in any text this pattern can match (``i:`` = in any case):
    #: the pre-filter skips the pattern on text that contains none of them.
    literals: tuple[str, ...] = ()


SECRET_PATTERNS: tuple[SecretPattern, ...] = (
    SecretPattern(
        "OPENAI_API_KEY",
        _NOT_TOKEN_BEFORE
        + r"(?P<s>sk-(?!ant-)(?:proj-|svcacct-|admin-)?"
        + _TOKEN
        + r"{20,})"
        + _NOT_TOKEN_AFTER,
        validator=lambda v: looks_random(v[3:]),
        literals=("sk-",),
    ),
    SecretPattern(
        "ANTHROPIC_API_KEY",
        _NOT_TOKEN_BEFORE + r"(?P<s>sk-ant-" + _TOKEN + r"{20,})" + _NOT_TOKEN_AFTER,
        validator=lambda v: looks_random(v[7:]),
        literals=("sk-ant-",),
    ),
    SecretPattern(
        "AWS_ACCESS_KEY_ID",
        r"(?<![A-Za-z0-9])(?P<s>(?:AKIA|ASIA)[A-Z0-9]{16})(?![A-Za-z0-9])",
        literals=("AKIA", "ASIA"),
    ),
    SecretPattern(
        # A 40-character base64 string is everywhere (hashes, ids), so the secret key is only
        # recognised next to its name: aws_secret_access_key=…, "SecretAccessKey": "…", …
        "AWS_SECRET_ACCESS_KEY",
        r"(?i:aws.{0,20}?secret(?:[_ .-]?access)?(?:[_ .-]?key)?|secret[_ .-]?access[_ .-]?key)"
        r"[^A-Za-z0-9/+\n]{0,12}(?:is[ \t]{1,4})?"
        r"(?<![A-Za-z0-9/+])(?P<s>[A-Za-z0-9/+]{40})(?![A-Za-z0-9/+=])",
        literals=("i:secret",),
    ),
    SecretPattern(
        "GITHUB_TOKEN",
        r"(?<![A-Za-z0-9_])(?P<s>gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])",
        literals=("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
    ),
    SecretPattern(
        "SLACK_TOKEN",
        r"(?<![A-Za-z0-9-])(?P<s>xox[abprse]-[A-Za-z0-9-]{10,}|xapp-\d-[A-Za-z0-9-]{10,})(?![A-Za-z0-9-])",
        validator=has_digit,
        literals=("xoxa-", "xoxb-", "xoxp-", "xoxr-", "xoxs-", "xoxe-", "xapp-"),
    ),
    SecretPattern(
        "SLACK_TOKEN",
        r"(?P<s>https://hooks\.slack\.com/services/[A-Za-z0-9]+/[A-Za-z0-9]+/[A-Za-z0-9]+)",
        literals=("hooks.slack.com",),
    ),
    SecretPattern(
        "JWT",
        _NOT_TOKEN_BEFORE
        + r"(?P<s>eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*)"
        + _NOT_TOKEN_AFTER,
        literals=("eyJ",),
    ),
    SecretPattern(
        # Longer than any hold-back window: delimited by its markers. An unterminated block
        # (a truncated paste, a stream cut short) is redacted to the end of the text.
        "PRIVATE_KEY",
        r"(?P<s>-----BEGIN[A-Z0-9 ]{0,24}PRIVATE KEY(?: BLOCK)?-----.*?"
        r"(?:-----END[A-Z0-9 ]{0,24}PRIVATE KEY(?: BLOCK)?-----|\Z))",
        flags=re.DOTALL,
        literals=("-----BEGIN",),
    ),
    SecretPattern(
        "BEARER_TOKEN",
        r"(?i:\bbearer)[ \t]{1,8}(?P<s>[A-Za-z0-9\-._~+/]{16,}=*)(?![A-Za-z0-9\-._~+/=])",
        validator=has_digit,
        literals=("i:bearer",),
    ),
    SecretPattern(
        "WARDGATE_KEY",
        _NOT_TOKEN_BEFORE + r"(?P<s>wg-" + _TOKEN + r"{20,})" + _NOT_TOKEN_AFTER,
        validator=lambda v: looks_random(v[3:]),
        literals=("wg-",),
    ),
    SecretPattern(
        # Presidio's own SSN patterns need separators; an unseparated one is recognised by its label.
        "US_SSN",
        r"(?i:\bssn|\bsocial[ \t]{1,4}security(?:[ \t]{1,4}(?:number|no\.?))?)[ \t]{0,4}(?:#|no\.?|number)?"
        r"[ \t]{0,4}[:=]?[ \t]{0,4}"
        r"(?P<s>\d{9})(?!\d)",
        score=0.6,
        validator=valid_ssn,
        literals=("i:ssn", "i:social"),
    ),
)


class GroupPatternRecognizer(LocalRecognizer):
    """Runs a few compiled patterns; the span is group ``s`` (or the whole match)."""

    def __init__(self, entity: str, patterns: list[SecretPattern], name: str | None = None) -> None:
        self._patterns = [(re.compile(p.regex, p.flags), p) for p in patterns]
        super().__init__(supported_entities=[entity], name=name or f"Wardgate{_camel(entity)}Recognizer")

    def load(self) -> None:
        """Nothing to load: the patterns are compiled in ``__init__``."""

    def analyze(
        self, text: str, entities: list[str], nlp_artifacts: NlpArtifacts | None = None
    ) -> list[RecognizerResult]:
        entity = self.supported_entities[0]
        if entities and entity not in entities:
            return []
        results: list[RecognizerResult] = []
        for regex, pattern in self._patterns:
            for m in regex.finditer(text):
                start, end = m.span("s") if "s" in regex.groupindex else m.span()
                if start == end:
                    continue
                if pattern.validator is not None and not pattern.validator(text[start:end]):
                    continue
                results.append(
                    RecognizerResult(
                        entity_type=entity,
                        start=start,
                        end=end,
                        score=pattern.score,
                        recognition_metadata={
                            RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                        },
                    )
                )
        return results


def _camel(entity: str) -> str:
    return "".join(part.capitalize() for part in entity.split("_"))


def secret_recognizers(wanted: set[str]) -> list[GroupPatternRecognizer]:
    """One recognizer per wanted entity type that has patterns here."""
    by_entity: dict[str, list[SecretPattern]] = {}
    for p in SECRET_PATTERNS:
        if p.entity in wanted:
            by_entity.setdefault(p.entity, []).append(p)
    names = {"US_SSN": "WardgateLabelledSsnRecognizer"}
    return [GroupPatternRecognizer(e, ps, name=names.get(e)) for e, ps in by_entity.items()]
