"""Ordinary formatting does not defeat detection: detection runs on a normalised view and the
original characters are replaced (zero-width characters inside a value included). Through
the real gateway, the upstream never sees the value."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from gateway.redaction.normalize import View
from gateway.redaction.redactor import Redactor
from tests.harness import PASS_THROUGH, TEST_KEY, RunningGateway, gateway_settings, running_gateway

ZWSP = "\u200b"
NBSP = "\u00a0"
KEY_HEAD = "sk-proj-T3stKeyAbc123DEF456ghi789"
KEY_TAIL = "JKL012mno345PQR"

#: (text, the original characters that must be replaced, entity type)
VARIANTS = [
    (f"card 4111{NBSP}1111{NBSP}1111{NBSP}1111 thanks", f"4111{NBSP}1111{NBSP}1111{NBSP}1111", "CREDIT_CARD"),
    ("card 4111  1111  1111  1111 thanks", "4111  1111  1111  1111", "CREDIT_CARD"),
    ("card 4111 1111\n1111 1111 thanks", "4111 1111\n1111 1111", "CREDIT_CARD"),
    ("card 4111 1111\r\n    1111 1111 thanks", "4111 1111\r\n    1111 1111", "CREDIT_CARD"),
    ("card 4111\t1111\t1111\t1111 thanks", "4111\t1111\t1111\t1111", "CREDIT_CARD"),
    ("card ４１１１ １１１１ １１１１ １１１１ thanks", "４１１１ １１１１ １１１１ １１１１", "CREDIT_CARD"),
    (f"card 4111{ZWSP}1111{ZWSP}1111{ZWSP}1111 thanks", f"4111{ZWSP}1111{ZWSP}1111{ZWSP}1111", "CREDIT_CARD"),
    ("iban gb82 west 1234 5698 7654 32 please", "gb82 west 1234 5698 7654 32", "IBAN_CODE"),
    ("iban gb82west12345698765432 please", "gb82west12345698765432", "IBAN_CODE"),
    ("iban GB82 WEST 1234\n5698 7654 32 please", "GB82 WEST 1234\n5698 7654 32", "IBAN_CODE"),
    (f"mail bob{ZWSP}.smith@example.com now", f"bob{ZWSP}.smith@example.com", "EMAIL_ADDRESS"),
    ("mail bob.smith＠example.com now", "bob.smith＠example.com", "EMAIL_ADDRESS"),
    ("mail ｂｏｂ@ｅｘａｍｐｌｅ.ｃｏｍ now", "ｂｏｂ@ｅｘａｍｐｌｅ.ｃｏｍ", "EMAIL_ADDRESS"),
    ("ssn ２１９-０９-９９９９ ok", "２１９-０９-９９９９", "US_SSN"),
    (f"call +44{NBSP}20{NBSP}7946{NBSP}0958 today", f"+44{NBSP}20{NBSP}7946{NBSP}0958", "PHONE_NUMBER"),
    (f"key {KEY_HEAD}\n{KEY_TAIL} and more", f"{KEY_HEAD}\n{KEY_TAIL}", "OPENAI_API_KEY"),
    (f"key {KEY_HEAD}\r\n  {KEY_TAIL}\n", f"{KEY_HEAD}\r\n  {KEY_TAIL}", "OPENAI_API_KEY"),
    (
        f"key sk-proj-{ZWSP}T3stKeyAbc123DEF456ghi789 x",
        f"sk-proj-{ZWSP}T3stKeyAbc123DEF456ghi789",
        "OPENAI_API_KEY",
    ),
    ("key ghp_" + "A1b2" * 9 + "\nxyz", "ghp_" + "A1b2" * 9, "GITHUB_TOKEN"),
]


@pytest.mark.parametrize(("text", "value", "entity"), VARIANTS)
def test_a_formatting_variant_is_found_and_its_original_characters_replaced(
    redactor: Redactor, text: str, value: str, entity: str
) -> None:
    spans = redactor.engine.detect(text)
    start = text.index(value)
    assert [(s.entity, text[s.start : s.end]) for s in spans] == [(entity, value)], start


@pytest.mark.parametrize(
    "text",
    [
        "Thanks!\nsk-proj-T3stKeyAbc123DEF456ghi789\nThe next line is prose.",
        "the build 2024  05 passed",  # two numbers on one line stay two numbers
        "total 1234\n\n5678 rows",  # a blank line always separates
        "(415) 555-2671\n2,Jane,jane@x.org",  # a CSV record's first field is not a phone group
    ],
)
def test_normalising_does_not_glue_what_is_separate(redactor: Redactor, text: str) -> None:
    spans = redactor.engine.detect(text)
    for s in spans:
        assert "\n\n" not in text[s.start : s.end]
        assert "prose" not in text[s.start : s.end] and "Jane" not in text[s.start : s.end]
    if text.startswith("Thanks"):
        assert [text[s.start : s.end] for s in spans] == ["sk-proj-T3stKeyAbc123DEF456ghi789"]
    if text.startswith("(415)"):
        assert next(text[s.start : s.end] for s in spans) == "(415) 555-2671"


def test_ascii_text_without_odd_spacing_is_its_own_view() -> None:
    view = View("plain text with 4111 1111 1111 1111 and a\nnewline")
    assert view.identity and view.text == view.original


def test_the_view_maps_expansions_and_deletions_back() -> None:
    text = f"a{ZWSP}ﬁ４ b"  # ligature fi -> 2 characters, fullwidth 4, a deleted ZWSP
    view = View(text)
    assert view.text == "afi4 b"
    assert view.span(1, 3) == (2, 3)  # "fi" -> the ligature; the ZWSP before it stays out
    assert view.span(0, 4) == (0, 4)  # across the deleted ZWSP: it is replaced too
    assert view.span(2, 3) == (2, 3)  # half of the ligature is the whole ligature


@pytest.fixture(scope="module")
def gw(fake_upstream, tmp_path_factory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("redaction-variants")
    overrides = {**PASS_THROUGH, "redaction": {"enabled": True}}
    with running_gateway(gateway_settings(root, fake_upstream.base_url, **overrides)) as running:
        yield running


def test_no_formatting_variant_reaches_the_upstream(gw, upstream) -> None:
    import openai

    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    messages = [{"role": "user", "content": text} for text, _, _ in VARIANTS]
    client.chat.completions.create(model="gpt-test", messages=messages)
    sent = orjson.loads(upstream.requests[-1].body)["messages"]
    for (text, value, entity), message in zip(VARIANTS, sent, strict=True):
        content = message["content"]
        assert value not in content, entity
        assert f"<{entity}_" in content, (entity, content)
        before, after = text.split(value)
        assert content.startswith(before) and content.endswith(after), "only the value is replaced"
