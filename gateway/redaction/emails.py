"""The e-mail recognizer: Presidio's regex and Presidio's validation, without Presidio's
per-match overhead.

A contact export (``name,email,phone``, 1,300 rows, 57 KB) cost ~58 ms in Presidio's
``EmailRecognizer`` (load ~7): ~17 ms of regex, the rest per match (~30 us: a tldextract
parse of every address, an explanation, a result, then a duplicate pass over results one
regex can never make overlap). Here the same compiled pattern runs with the same flags and
timeout, searched only in the run around each ``@`` (``_matches``); each match is valid exactly when Presidio's ``validate_result`` says so, because
tldextract's answer depends only on the host its ``lenient_netloc`` reads from the address,
and that answer is memoised per host. The key is the domain part only, never an address (an
address is PII; a domain is not): when the host is not the address's domain part (a ``/``,
``?`` or ``#`` in the local part makes tldextract read part of the local part as the host),
the address is validated without the memo.

That same reading hid an address at the end of a path: in ``kb://customers/jane.roe@example.com``
or ``a b/jane.roe@example.com`` the match (the local part may hold ``/``) is
``customers/jane.roe@example.com``, whose "host" ``customers`` is no domain, so Presidio
dropped it and the address passed. A match Presidio rejects whose local part holds ``/``,
``?`` or ``#`` is tried again from just after the last of them (``_path_tail``): the address
the path ends in is found when it is one by Presidio's own pattern and validation.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Iterator
from typing import Any

import regex  # type: ignore[import-untyped]  # Presidio's regex engine (timeouts); no stubs
import tldextract
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.pattern_recognizer import REGEX_TIMEOUT_SECONDS
from presidio_analyzer.predefined_recognizers import EmailRecognizer
from tldextract.remote import lenient_netloc

log = logging.getLogger("wardgate.redaction")

#: ``scheme://user:`` just before a match: what follows is a password and a host, not an address.
_USERINFO_BEFORE = re.compile(r"://[^\s:/@]{0,64}:$")


#: A run of characters an address's part could hold, or more (a superset): everything but
#: whitespace and ASCII punctuation neither part can hold. Each stop is a non-word character,
#: so a search bounded by stops sees the same ``\b`` as a search of the whole text.
_RUN = re.compile(r'[^\s,;:"()<>\[\]\\@]*')


def _matches(pattern: Any, text: str) -> Iterator[Any]:
    """``pattern.finditer(text)`` for the e-mail pattern, searching only around each ``@``.

    A match holds exactly one ``@`` (neither part may), preceded by local-part characters and
    followed by domain characters, none of them a stop of ``_RUN``. So the next match after
    ``end`` is the first ``@`` at or after ``end`` searched within its run, [run start or
    ``end``, run end), or else the next ``@``'s: the regex never walks text without an ``@``
    (a CSV's names and phone numbers were most of its ~17 ms on 1,300 contacts).
    """
    n = len(text)
    rev: str | None = None
    end = 0
    at = text.find("@")
    while at >= 0:
        if rev is None:
            rev = text[::-1]
        before = _RUN.match(rev, n - at)
        start = at - (before.end() - (n - at)) if before else at
        after = _RUN.match(text, at + 1)
        stop = after.end() if after else at + 1
        match = pattern.search(text, max(start, end), stop, timeout=REGEX_TIMEOUT_SECONDS)
        if match is not None:
            yield match
            end = match.end()
        at = text.find("@", max(at + 1, end))


@functools.lru_cache(maxsize=4096)
def _host_valid(host: str) -> bool:
    """Presidio's test (a registrable domain under a public suffix) for one host."""
    return tldextract.extract(host).fqdn != ""


def email_valid(address: str) -> bool:
    """``EmailRecognizer.validate_result(address)``, memoised per domain."""
    if "/" not in address and "?" not in address and "#" not in address:
        # What lenient_netloc returns for a match without them: the part after the "@" (no
        # scheme, port, brackets, spaces or trailing dot can be in a match), ~2 us cheaper.
        return _host_valid(address.rpartition("@")[2])
    host = lenient_netloc(address)
    if address.endswith(host) and address[-len(host) - 1 : -len(host)] == "@":
        return _host_valid(host)
    return bool(tldextract.extract(address).fqdn != "")


#: What tldextract reads as the end of a host: a local part holding one hides the address after it.
_URL_CUTS = ("/", "?", "#")


def _path_tail(pattern: Any, text: str, start: int, end: int) -> int | None:
    """Where the address a rejected match ends in starts (``customers/jane@example.com`` ->
    ``jane@example.com``), or None: the tail after the local part's last ``/``, ``?`` or ``#``
    must itself be a whole match of the pattern and valid."""
    at = text.rfind("@", start, end)
    cut = max(text.rfind(ch, start, at) for ch in _URL_CUTS)
    if cut < 0:
        return None
    tail = cut + 1
    if pattern.fullmatch(text, tail, end, timeout=REGEX_TIMEOUT_SECONDS) is None:
        return None
    return tail if email_valid(text[tail:end]) else None


class UrlAwareEmailRecognizer(EmailRecognizer):
    """Presidio's e-mail recognizer, except the ``password@host`` of a URL's userinfo
    (``mongodb+srv://svc:Zx9y@cluster0.example.net``), which the PASSWORD recognizer
    redacts as a password (a secret: never restored into an answer)."""

    #: One regex's matches: never overlapping, in order, none at score 0. The engine skips
    #: Presidio's duplicate pass for a family whose only recognizer this is (engine._presidio).
    DISJOINT_SORTED = True

    def validate_result(self, pattern_text: str) -> bool:
        return email_valid(pattern_text)

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # type: ignore[no-untyped-def]  # Presidio's own signature, untyped upstream
        # What PatternRecognizer.__analyze_patterns does for this one pattern: a match is
        # kept at MAX_SCORE when valid, dropped (MIN_SCORE) when not; invalidate_result is
        # Presidio's default (None). One regex's matches never overlap, so its duplicate
        # pass would change nothing: the matches come sorted by start already.
        me: Any = self  # Presidio's attributes are untyped upstream
        patterns: list[Any] = me.patterns
        name: str = me.name
        if len(patterns) != 1:  # configured otherwise: Presidio's own loop and duplicate pass
            found = super().analyze(text, entities, nlp_artifacts, regex_flags)
            return [r for r in found if not _USERINFO_BEFORE.search(text, max(0, r.start - 96), r.start)]
        flags: int = regex_flags if regex_flags else me.global_regex_flags
        results: list[RecognizerResult] = []
        entity = self.supported_entities[0]
        metadata = {
            RecognizerResult.RECOGNIZER_NAME_KEY: name,
            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
        }
        for pattern in patterns:
            if not pattern.compiled_regex or pattern.compiled_with_flags != flags:
                pattern.compiled_with_flags = flags
                pattern.compiled_regex = regex.compile(pattern.regex, flags=flags)  # as Presidio does
            try:
                for match in _matches(pattern.compiled_regex, text):
                    start, end = match.span()
                    if start == end:
                        continue
                    if not email_valid(text[start:end]):
                        tail = _path_tail(pattern.compiled_regex, text, start, end)
                        if tail is None:
                            continue
                        start = tail
                    if _USERINFO_BEFORE.search(text, max(0, start - 96), start):
                        continue
                    score = EntityRecognizer.MAX_SCORE
                    explanation = self.build_regex_explanation(
                        name, pattern.name, pattern.regex, score, True, flags
                    )
                    results.append(RecognizerResult(entity, start, end, score, explanation, dict(metadata)))
            except TimeoutError:  # as Presidio: the pattern is skipped, with a warning (no text logged)
                log.warning("e-mail pattern timed out after %s seconds, skipped", REGEX_TIMEOUT_SECONDS)
        return results
