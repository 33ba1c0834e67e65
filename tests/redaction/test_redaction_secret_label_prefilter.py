"""The labelled-secret family (``api_key: …``, ``client_secret``, ``token=…``) is analysed only
where a label *and its end* stand around a key word (``secrets.SECRET_LABEL_HEAD``): prose that
merely says "API" or "token" costs no analysis window (issue 16, case c), and what the
pre-filtered analysis finds is exactly what the full analysis finds."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.redaction import scan as scan_module
from gateway.redaction.literals import LiteralIndex, words_in_lower
from gateway.redaction.prefilter import digit_chain, windows
from gateway.redaction.redactor import Redactor
from gateway.redaction.scan import ChainScanner, Scan
from gateway.redaction.secrets import _LABEL_END, LABEL_END_HINT

PW = "Tr0ub4dor3xyz"
LABELLED = [
    f"api_key: {PW}",
    f'{{"client_secret": "{PW}"}}',
    f"export ACCESS_TOKEN={PW}",
    f"token: {PW}",
    f"the secret is {PW}",
    f"the consumer-secret was: {PW}",
    f"passcode={PW}",
    f"private_key => {PW}",
    f"APIKEY  :=  {PW}",
    f'"refresh_token" : "{PW}"',
]
PROSE = (
    "Please keep the public API unchanged; the token budget and the secret sauce stay private. "
    "Rapid capital therapists use tokenizers, and the passcode screen is fine."
)


def _family(redactor: Redactor):  # type: ignore[no-untyped-def]
    return next(f for f in redactor.engine.families if f.name == "secret_label")


def _found(redactor: Redactor, text: str, prefilter: bool) -> list[tuple[str, str]]:
    return [(s.entity, text[s.start : s.end]) for s in redactor.engine.detect(text, prefilter=prefilter)]


def test_prose_with_key_words_but_no_label_costs_no_window(redactor: Redactor) -> None:
    assert windows(_family(redactor), Scan(PROSE, redactor.engine.chain)) == []
    assert _found(redactor, PROSE, True) == _found(redactor, PROSE, False) == []


def test_every_labelled_secret_is_still_found_among_key_words(redactor: Redactor) -> None:
    for line in LABELLED:
        text = f"{PROSE}\n{line}\n{PROSE}"
        found = _found(redactor, text, True)
        assert ("PASSWORD", PW) in found, line
        assert found == _found(redactor, text, False), line


@settings(max_examples=150, deadline=None)
@given(
    label=st.sampled_from(
        ["api", "api_key", "token", "auth token", "client secret", "secret", "private_key", "passcode"]
    ),
    end=st.sampled_from(
        [
            ":",
            " :",
            "=",
            " => ",
            '": "',
            " is ",
            " was: ",
            " ",
            " - ",
            "\n",
            " IS ",
            "\t=> ",
            "    :=",
            "_key:",
            "_token =",
            " -> ",
            " | ",
            "\t",
            "'\t",
            " ->",
        ]
    ),
    before=st.sampled_from(["", "x", "my ", "the_", '"', "rapid"]),
    value=st.sampled_from([PW, "hunter2", "a8F3kq9ZpL0wX7vB2nM5", "None"]),
)
def test_prefiltered_labelled_secrets_equal_the_full_analysis(
    redactor: Redactor, label: str, end: str, before: str, value: str
) -> None:
    text = f"see {before}{label}{end}{value} today"
    assert _found(redactor, text, True) == _found(redactor, text, False)


@pytest.mark.parametrize("engine", ["hyperscan", "re"])
@settings(max_examples=200, deadline=None)
@given(data=st.data(), many=st.booleans())
def test_the_literal_index_answers_as_in_for_each_group(engine: str, data, many: bool) -> None:
    """``literals.LiteralIndex``: a case-sensitive literal as written, a word in any case, per
    group; Hyperscan (one pass over the lower-cased text, the case-sensitive hits confirmed) and
    ``re`` (a shared search, then each group's) give each group exactly the ``in`` tests'
    answer, for a few and for many words (a deny list), non-ASCII text and lone surrogates."""
    groups = [
        (["sk-", "AKIA"], ["secret", "pass"]),
        (["eyJ"], []),
        ([], ["bearer", "pwd", "basic", "straße"] + ([f"term{i}" for i in range(12)] if many else [])),
        (["sk-"], ["pass"]),  # literals shared with another group
    ]
    if engine == "hyperscan":
        pytest.importorskip("hyperscan", reason="x86-64 Linux only (pyproject); elsewhere `re` answers")
    index = LiteralIndex(groups, engine=engine)
    assert index.engine == engine
    ascii_pieces = [
        "x",
        " ",
        "Sec",
        "RET",
        "pa",
        "SS",
        "pW",
        "d",
        "Term1",
        "sk",
        "SK",
        "-",
        "AKI",
        "A",
        "ey",
        "J",
    ]
    pieces = st.sampled_from([*ascii_pieces, "STRASSE", "Stra", "ße", "İ", "\ud800", "é"])
    text = "".join(data.draw(st.lists(pieces, max_size=12)))
    want = {
        g
        for g, (cs, ci) in enumerate(groups)
        if any(lit in text for lit in cs) or any(w in text.lower() for w in ci)
    }
    assert index.found(Scan(text, ChainScanner(digit_chain(6)))) == want, text


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(["x", " ", "Api", "KEY", "tok", "en", "TOKEN", "aa", "a", "SECRET", "é", "İ"]),
        max_size=14,
    )
)
def test_the_key_word_finder_finds_every_occurrence_as_the_find_loops(pieces: list[str]) -> None:
    """``literals.words_in_lower`` (one Hyperscan pass on ASCII text) gives exactly the spots of
    ``scan.words_in_lower``'s ``str.find`` loops: every occurrence, overlapping ones (``aa`` in
    ``aaa``) included, sorted; non-ASCII text takes the loops (or the regex, ``İ``)."""
    pytest.importorskip("hyperscan", reason="x86-64 Linux only (pyproject)")
    words = ("secret", "api", "token", "aa")
    text = "".join(pieces)
    scan = Scan(text, ChainScanner(digit_chain(6)))
    assert words_in_lower(words)(scan) == scan_module.words_in_lower(words)(scan), text


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet=" \t:=|->\"'iswaxIS", max_size=14))
def test_the_label_end_hint_is_found_early_in_every_label_end(text: str) -> None:
    """``secrets.LABEL_END_HINT`` occurs within the first 12 characters of every match of
    ``secrets._LABEL_END`` (what the pre-filter's look past a key word relies on)."""
    m = re.match(_LABEL_END, text)
    if m is not None:
        assert LABEL_END_HINT.search(text, 0, min(len(text), 12)) is not None, repr(text)
