"""The phone families' cheap rejections in the pre-filter (issue 16, case c): a chain without a
``+`` and with fewer digits than any valid number is written with (an amount ``1234.56``) is
no phone number before its blocks are read, and the labelled family reuses what the phone
family's fast path settled instead of parsing a ``+44`` number a second time. Neither may
change what is found: the pre-filtered analysis must equal the full one."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.redaction.accepts import label_chain, plus_starts
from gateway.redaction.fastphones import FastPhones
from gateway.redaction.phones import _plus_before, label_before
from gateway.redaction.prefilter import digit_chain
from gateway.redaction.redactor import Redactor
from gateway.redaction.scan import ChainScanner, Scan


def _phones(redactor: Redactor, text: str, prefilter: bool = True) -> list[str]:
    return [
        text[s.start : s.end]
        for s in redactor.engine.detect(text, prefilter=prefilter)
        if s.entity == "PHONE_NUMBER"
    ]


def test_short_unsigned_chains_are_not_phone_numbers_but_short_plus_numbers_are(redactor: Redactor) -> None:
    text = '{"amount": 1234.56, "id": 482913, "created_at": "2024-05-06T10:22:00Z"} call +43 1 2345 now'
    assert _phones(redactor, text) == ["+43 1 2345"] == _phones(redactor, text, prefilter=False)
    assert _phones(redactor, "released on 2024-05-06, build 1234.56") == []


def test_a_phone_number_next_to_an_iso_date_is_still_found(redactor: Redactor) -> None:
    for text in (
        "call +44 20 7946 0958 on 2024-05-06",
        "2024-05-06: (212) 736-5000",
        "on 2024-05-06 phone 415-555-2671, amount 1234.56",
        "Call me at (355) 852-9749 on 2024-05-06",  # a possible number after a label
    ):
        assert _phones(redactor, text) == _phones(redactor, text, prefilter=False) != []


def test_a_labelled_plus_number_is_parsed_once(redactor: Redactor, monkeypatch) -> None:
    """The phone family settles ``+44 20 7946 0958`` with phonenumbers (``settle_plus``); the
    labelled family, whose label ``call`` precedes it, takes that answer instead of settling
    the chain again."""
    calls: list[tuple[int, int]] = []
    real = FastPhones.settle_plus

    def spy(self: FastPhones, text: str, start: int, end: int) -> tuple[int, int] | None:
        calls.append((start, end))
        return real(self, text, start, end)

    monkeypatch.setattr(FastPhones, "settle_plus", spy)
    text = "please call +44 20 7946 0958 today"
    assert _phones(redactor, text) == ["+44 20 7946 0958"]
    assert len(calls) == 1


_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=5)
_SEPS = st.sampled_from([" ", "-", ".", "  ", "(", ") ", "/", " - ", ""])


@settings(max_examples=300, deadline=None)
@given(
    blocks=st.lists(st.tuples(_DIGITS, _SEPS), min_size=1, max_size=5),
    lead=st.sampled_from(["", "+", "+ ", "(", "call ", "phone: +"]),
    before=st.sampled_from(["total ", "id=", "on ", '"amount": ']),
)
def test_prefiltered_phone_numbers_equal_the_full_analysis(
    redactor: Redactor, blocks, lead: str, before: str
) -> None:
    """Short chains, single runs, dates and amounts, with and without ``+`` or a label: the
    pre-filter (with its early rejections) finds exactly what the recognizers find on the
    whole text."""
    chain = "".join(d + s for d, s in blocks).rstrip(" -./(")
    text = f"{before}{lead}{chain} today"
    assert _phones(redactor, text) == _phones(redactor, text, prefilter=False)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="+\uff0b0123456789\u00b2\u0663 ()-.ax", max_size=40))
def test_plus_starts_equals_the_look_back_before_each_digit(text: str) -> None:
    """``accepts.plus_starts`` (from the text's few ``+``) answers as ``_plus_before`` looking
    back from each digit, fullwidth plus and digits of other scripts included."""
    starts = plus_starts(Scan(text, ChainScanner(digit_chain(6))))
    for p, c in enumerate(text):
        if c.isdigit():
            assert (p in starts) == _plus_before(text, p), (text, p)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.sampled_from(
            ["Call ", "PHONE: ", "tel", "my number is ", "ring ", "no. ", "x", " ", "İ", "12", "415-555-2671"]
        ),
        max_size=14,
    )
)
def test_label_chain_equals_label_before(parts: list[str]) -> None:
    """``accepts.label_chain`` (the text's lower-cased copy, ASCII) answers as
    ``phones.label_before`` (a lowered copy of the characters before each chain)."""
    text = "".join(parts)
    scan = Scan(text, ChainScanner(digit_chain(6)))
    for a, b, digits, blocks in scan.chains:
        assert label_chain(scan, a, b, digits, blocks) == label_before(text, a, b), (text, a)
