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

import itertools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from presidio_analyzer import LocalRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from gateway.redaction.secret_values import (
    PLACEHOLDER,
    basic_credentials,
    generated_secret,
    has_digit,
    looks_random,
    real_password,
    valid_ssn,
)
from gateway.redaction.spans import Span

Validator = Callable[[str], bool]

_TOKEN = r"[A-Za-z0-9_-]"
#: Before a prefixed key: no letter, digit or "-". A "_" may glue it to a name (``key_sk-…``,
#: ``x_ghp_…``, ``DEV_sk_live_…``): Presidio-style ``\b`` and ``[…_]`` bounds let those pass.
_NOT_TOKEN_BEFORE = r"(?<![A-Za-z0-9-])"
_NOT_TOKEN_AFTER = r"(?![A-Za-z0-9_-])"


_PASSWORD_VALUE = (
    r"[ \t]{0,4}(?:\"(?P<s>[^\"\n]{1,40})\"|'(?P<s2>[^'\n]{1,40})'|(?P<s3>[^\s\"'`,;)\]}]{1,128}))"
)


#: Between a label and its value: ``:``, ``=``, ``:=``, ``=>``, ``->``, a table's ``|`` or a
#: tab (after an optional quote), or "is" / "was" in a sentence.
_LABEL_END = (
    r"(?:[\"']?[ \t]{0,4}(?::=?|=>?|->|\|)|[\"']?\t|[ \t]{1,4}(?:is|was)(?![A-Za-z])(?:[ \t]{0,4}:)?)"
)
#: The internal type of a credential found by another label than a password's (``api_key:``,
#: ``token=``, ``client_secret``): reported as ``PASSWORD``, detected whenever ``PASSWORD``
#: is, but a family of its own (``prefilter.py``), analysed only near its label words: as a
#: ``PASSWORD`` literal, "api" or "token" in any prose sent the whole text through every
#: password pattern (case c, a 20 KB message: ~3x its detection time).
LABELLED_SECRET = "PASSWORD_LABELLED"
#: The words every label of ``LABELLED_SECRET`` holds (lower case): its family's triggers.
SECRET_LABEL_KEYS = ("secret", "api", "token", "private", "passcode")
_SECRET_LABEL = (
    r"(?i:(?<![A-Za-z])(?:(?:client|app|api|consumer|shared)[_ .-]?secret|secret(?:[_ .-]?key)?"
    r"|api[_ .-]?key|apikey|(?:access|auth|refresh|session|bearer|api)[_ .-]?token|token"
    r"|private[_ .-]?key|passcode)(?![A-Za-z]))"
)
#: How every match of ``LABELLED_SECRET`` begins, <= 20 chars past its key word (prefilter.py).
SECRET_LABEL_HEAD = re.compile(_SECRET_LABEL + _LABEL_END)
#: Found within the first 12 characters of every ``_LABEL_END`` match (keep in step with it;
#: tested): the pre-filter's cheap look past a key word before ``SECRET_LABEL_HEAD``.
LABEL_END_HINT = re.compile(r"[:=|\t]|->|[ \t](?:is|was)(?![A-Za-z])")


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
        r"(?<![A-Za-z0-9])(?P<s>gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})(?![A-Za-z0-9_])",
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
        # The password of a URL's userinfo: postgres://admin:S3cr3t@db, mongodb+srv://u:p@…,
        # redis://:pw@…, https://user:pw@host. The password is redacted, user and host stay.
        "PASSWORD",
        r"(?i:\b[a-z][a-z0-9+.-]{1,20})://[^\s:/@]{0,64}:(?P<s>[^\s@/]{1,128})@(?=[A-Za-z0-9\[])",
        validator=lambda v: not PLACEHOLDER.fullmatch(v),
        literals=("://",),
    ),
    SecretPattern(
        # password: hunter2, "password": "a b c", passwd=…, DB_PASSWORD='…'. Quoted values may
        # hold spaces (bounded, so a stream's hold-back covers the whole match). Or as a
        # sentence: "my password is hunter2", "the passphrase was: Tr0ub4dor" ("is correct",
        # "was too short" are words, which ``real_password`` refuses).
        # Also in other languages; Cyrillic as detection reads it ("пароль": "пapoль", normalize.py).
        # Few words in any case ("i:"): past 8 the literal gate takes a regex pass (scan.py).
        "PASSWORD",
        r"(?i:(?<![A-Za-z])(?:password|passwd|pass[ _-]?phrase|pass|passwort|contrase[ñn]a|mot de passe|senha"
        r"|(?-i:пapoль|Пapoль|ПAPOЛЬ)|密码|口令|パスワード|비밀번호)(?![A-Za-z]))"
        + _LABEL_END
        + _PASSWORD_VALUE,
        validator=real_password,
        literals=(
            "i:pass",
            "i:contrase",
            "i:senha",
            "poль",
            "POЛЬ",
            "密码",
            "口令",
            "パスワード",
            "비밀번호",
        ),
    ),
    SecretPattern(
        # Other credentials by their label: api_key: …, "client_secret": "…", token=…,
        # access_token, auth token, secret, private_key, passcode. Many of these words label
        # things that are not secret in prose about models ("token: 50256", "secret: str",
        # "api_key: YOUR_API_KEY"), so the value must look generated (``generated_secret``).
        LABELLED_SECRET,
        _SECRET_LABEL + _LABEL_END + _PASSWORD_VALUE,
        # Below the formats' 1.0: a Slack token or a wg- key after "token:" keeps its own type.
        score=0.9,
        validator=generated_secret,
        literals=tuple(f"i:{key}" for key in SECRET_LABEL_KEYS),  # its own family's (prefilter.py)
    ),
    SecretPattern(
        # pwd=… (``pwd:`` is how the shell command's output is introduced: "=" only).
        "PASSWORD",
        r"(?i:(?<![A-Za-z])pwd(?![A-Za-z]))[\"']?[ \t]{0,4}=" + _PASSWORD_VALUE,
        validator=real_password,
        literals=("i:pwd",),
    ),
    SecretPattern(
        "GOOGLE_API_KEY",
        r"(?<![A-Za-z0-9_-])(?P<s>AIza[0-9A-Za-z_-]{35})(?![A-Za-z0-9_-])",
        literals=("AIza",),
    ),
    SecretPattern(
        "STRIPE_API_KEY",
        r"(?<![A-Za-z0-9])(?P<s>(?:sk|rk)_(?:live|test)_[0-9A-Za-z]{16,247})(?![A-Za-z0-9_])",
        literals=("sk_live_", "rk_live_", "sk_test_", "rk_test_"),
    ),
    SecretPattern(
        # Authorization: Basic dXNlcjpwYXNz (base64 of user:password; checked by decoding).
        "BASIC_AUTH",
        r"(?i:\bbasic)[ \t]{1,8}(?P<s>[A-Za-z0-9+/]{6,}={0,2})(?![A-Za-z0-9+/=])",
        validator=basic_credentials,
        literals=("i:basic",),
    ),
    SecretPattern(
        # Presidio's own SSN patterns need separators; an unseparated one is recognised by its label.
        "US_SSN",
        # "ssn" also glued by "_" (user_ssn_536221234, SSN_536221234): a key name, not a word.
        r"(?i:(?<![A-Za-z0-9])ssn|\bsocial[ \t]{1,4}security(?:[ \t]{1,4}(?:number|no\.?))?)[\"']?[ \t]{0,4}"
        r"(?:#|no\.?|number)?[ \t]{0,4}[:=_]?[ \t]{0,4}[\"']?"
        r"(?P<s>\d{9})(?!\d)",
        score=0.6,
        validator=valid_ssn,
        literals=("i:ssn", "i:social"),
    ),
)


class GroupPatternRecognizer(LocalRecognizer):
    """Runs a few compiled patterns; the span is group ``s`` (or the whole match)."""

    name: str  # set by Presidio's base class (declared here: its own annotation is not inferable)

    def __init__(self, entity: str, patterns: list[SecretPattern], name: str | None = None) -> None:
        self._patterns = []
        for p in patterns:
            regex = re.compile(p.regex, p.flags)
            groups = tuple(g for g in ("s", "s2", "s3") if g in regex.groupindex)
            self._patterns.append((regex, p, groups))
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
        for regex, pattern, groups in self._patterns:
            for m in regex.finditer(text):
                start, end = _span(m, groups)
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


def _span(m: re.Match[str], groups: tuple[str, ...]) -> tuple[int, int]:
    """Group ``s`` (or the first alternative ``s2``, ``s3`` that matched), else the match."""
    for g in groups:
        if m.start(g) >= 0:
            return m.span(g)
    return m.span()


def _camel(entity: str) -> str:
    return "".join(part.capitalize() for part in entity.split("_"))


def secret_recognizers(wanted: set[str]) -> list[GroupPatternRecognizer]:
    """One recognizer per wanted entity type that has patterns here."""
    by_entity: dict[str, list[SecretPattern]] = {}
    for p in SECRET_PATTERNS:
        if p.entity in wanted or (p.entity == LABELLED_SECRET and "PASSWORD" in wanted):
            by_entity.setdefault(p.entity, []).append(p)
    names = {"US_SSN": "WardgateLabelledSsnRecognizer"}
    return [GroupPatternRecognizer(e, ps, name=names.get(e)) for e, ps in by_entity.items()]


#: How far left of a value a label-dependent pattern may look for its label (the AWS secret
#: key's name, ``SSN:``, ``password:``, ``Basic``, a phone label), with margin. The stream
#: redactor keeps at least this much released text as left context.
LABEL_REACH = 96

_ENTITY = operator.itemgetter(2)  # Span.entity
#: Token-shaped secrets of open length: a line break right after one may be a wrap.
WRAPPABLE = frozenset(
    {
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GITHUB_TOKEN",
        "SLACK_TOKEN",
        "JWT",
        "BEARER_TOKEN",
        "WARDGATE_KEY",
        "STRIPE_API_KEY",
    }
)
_WRAP = re.compile(r"(?:\r\n|\r|\n)[ \t]{0,8}([A-Za-z0-9_+/=.-]+)")
_MAX_WRAPS = 8


def _continues(tail: str) -> bool:
    """The rest of a wrapped key, not the next line's first word: noise (a digit or a capital
    after a small letter), like the key itself."""
    if any(c.isdigit() for c in tail):
        return True
    return any(b.isupper() and a.islower() for a, b in itertools.pairwise(tail))


def extend_wrapped(text: str, spans: list[Span]) -> list[Span]:
    """A key wrapped onto the next line(s) (a terminal, an e-mail client at 76 columns) is
    redacted whole: a token-shaped secret that ends exactly at a line break is extended over
    the next line's leading token when that token looks like key material."""
    if WRAPPABLE.isdisjoint(map(_ENTITY, spans)):  # a C loop: nothing to extend (a contact list)
        return spans
    out = []
    for s in spans:
        if s.entity in WRAPPABLE:
            end = s.end
            for _ in range(_MAX_WRAPS):
                m = _WRAP.match(text, end)
                if m is None:
                    break
                tail = m.group(1).rstrip(".=") or m.group(1)
                if not _continues(tail):
                    break
                end = m.start(1) + len(tail)
            if end != s.end:
                s = s._replace(end=end)
        out.append(s)
    return out
