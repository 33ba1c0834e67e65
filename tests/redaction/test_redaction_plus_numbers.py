"""Numbers written with ``+`` (``+44 20 7946 0958``) are settled by phonenumbers' own check of
the exact candidate its matcher would take (``FastPhones.settle_plus``) instead of one matcher
scan per region: the detections must be exactly the slow path's, for valid, possible and
invalid numbers of many countries, in many groupings and next to many characters, and each
number settled that way still counts against the matcher cap (issue 18)."""

from __future__ import annotations

import phonenumbers
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.errors import BadRequest
from gateway.redaction.budget import WorkBudget
from gateway.redaction.fastphones import FastPhones
from gateway.redaction.redactor import Redactor

_REGIONS = ["GB", "DE", "FR", "US", "IN", "JP", "BR", "AU", "CH", "NL", "IT", "ES", "SG", "ZA", "AR", "MX"]


def _example(region: str, kind: int) -> str:
    """A valid example number's digits (country code + NSN), or a look-alike of it."""
    number = phonenumbers.example_number(region)
    assert number is not None
    digits = f"{number.country_code}{number.national_number}"
    if kind == 1:  # one digit more: possible or invalid
        digits += "7"
    elif kind == 2:  # one digit less
        digits = digits[:-1]
    elif kind == 3:  # last digits changed: often still valid
        digits = digits[:-3] + "123"
    return digits


def _group(digits: str, cuts: list[int], seps: list[str]) -> str:
    out, last = [], 0
    for i, cut in enumerate(sorted(set(c for c in cuts if 0 < c < len(digits)))):
        out.append(digits[last:cut] + seps[i % len(seps)])
        last = cut
    return "".join(out) + digits[last:]


_AROUND = st.sampled_from(
    [
        "",
        " ",
        "x",
        "(",
        "( ",
        ")",
        ",",
        ";",
        ".",
        ":",
        "#",
        "+",
        "++",
        "-",
        "/",
        "a",
        "a.",
        " ext. 12",
        " x3",
        ";ext=12",
        " int 5",
        "~1",
        "\n",
        "'",
        "1",
        "12 ",
        "=",
        "$",
        "[",
        "]",
        "{",
        ":30",
        " 10:30",
        "2024-05-12 ",
        "\uff0b",
        "(0)",
        " / 68",
        "/x",
    ]
)


@settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    region=st.sampled_from(_REGIONS),
    kind=st.integers(min_value=0, max_value=3),
    cuts=st.lists(st.integers(min_value=1, max_value=14), max_size=4),
    seps=st.lists(st.sampled_from([" ", " ", "-", ".", "  ", " (0)", ") ", " - "]), min_size=1, max_size=3),
    before=_AROUND,
    after=_AROUND,
    label=st.sampled_from(["row 7 ", "call me at ", "phone: ", "Tel.", "see", "id=", ""]),
)
def test_numbers_written_with_plus_are_found_as_the_matcher_finds_them(
    redactor: Redactor,
    region: str,
    kind: int,
    cuts: list[int],
    seps: list[str],
    before: str,
    after: str,
    label: str,
) -> None:
    number = "+" + _group(_example(region, kind), cuts, seps)
    text = f"{label}{before}{number}{after} end"
    assert redactor.engine.detect(text) == redactor.engine.detect(text, prefilter=False), text


@pytest.mark.parametrize(
    "text",
    [
        "call +44 20 7946 0958 if urgent",
        "+44 20 7946 0958",
        "numbers: +44 20 7946 0958, +49 30 901820, +33 1 42 68 53 00.",
        "(+44 20 7946 0958)",
        "[+44 20 7946 0958]",
        "x+44 20 7946 0958",
        "+44 20 7946 0958;ext=12",
        "+44 20 7946 0958 ext. 7",
        "+44 20 7946 0958 int 5",
        "at 2024-05-12 +44 20 7946 0958:30",
        "+44 2024 05 12 10:30",
        "+1 415 555 2671 / 68",
        "415-555-2671;ext=12 end",  # an extension the matcher takes into the span: not settled
        "call (212) 736-5000;ext=7",
        "415-555-2671 int 5 ok",
        "x 415-555-2671 anexo 12",
        "415-555-2671 - 12# x",
    ],
)
def test_edges_of_the_plus_path_equal_the_slow_path(redactor: Redactor, text: str) -> None:
    assert redactor.engine.detect(text) == redactor.engine.detect(text, prefilter=False), text


def test_a_valid_plus_number_is_settled_without_the_matcher() -> None:
    fast = FastPhones(("US", "GB"), 2)
    text = "call +44 20 7946 0958 if urgent"
    start = text.index("44")
    end = text.index(" if")
    assert fast.settle(text, start, end) == (start - 1, end)
    assert fast.settle("call (+44 20 7946 0958) now", 7, 22) is None  # "(" leads the matcher's candidate
    assert fast.settle("call +99 20 7946 0958 now", 6, 21) is None  # no such country code


def test_plus_numbers_settled_by_phonenumbers_count_against_the_matcher_cap(redactor: Redactor) -> None:
    """A dense list of UK numbers is charged one matcher candidate each, as before the fast path."""
    dense = " ".join(f"+44 20 7946 {n:04d}" for n in range(60))
    budget = WorkBudget(max_chars=10**8, max_candidates=10**6, max_matcher=1000)
    spans = redactor.engine.detect(dense, budget=budget)
    assert len(spans) == 60 and budget.matcher == 60
    with pytest.raises(BadRequest):
        redactor.engine.detect(
            dense, budget=WorkBudget(max_chars=10**8, max_candidates=10**6, max_matcher=50)
        )
