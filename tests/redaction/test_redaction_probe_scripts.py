"""Spellings a real user (or a hostile agent) reaches for next, after the formatting variants
of ``test_redaction_formatting_variants.py``: digits of other scripts (an Arabic, Persian or
Hindi keyboard writes ``٤١١١``, ``۴۱۱۱``, ``४१५``), dashes a word processor puts between
groups (en dash, non-breaking hyphen, minus sign), the ideographic full stop a Chinese input
method types in a domain, and invisible characters outside category Cf (variation selectors,
the combining grapheme joiner) inside a value. Each is found on the normalised view and the
original characters are replaced; through the real gateway the upstream never sees one, in a
chat message, a responses input item or an embeddings input."""

from __future__ import annotations

import re
from collections.abc import Iterator

import openai
import orjson
import pytest

from gateway.redaction.redactor import Redactor
from tests.harness import PASS_THROUGH, TEST_KEY, RunningGateway, gateway_settings, running_gateway

KEY = "sk-proj-T3stKeyAbc123DEF456ghi789JKL"

#: (text, the original characters that must be replaced, entity type)
VARIANTS = [
    ("card ٤١١١ ١١١١ ١١١١ ١١١١ thanks", "٤١١١ ١١١١ ١١١١ ١١١١", "CREDIT_CARD"),
    ("card ۴۱۱۱-۱۱۱۱-۱۱۱۱-۱۱۱۱ thanks", "۴۱۱۱-۱۱۱۱-۱۱۱۱-۱۱۱۱", "CREDIT_CARD"),
    ("call me at (४१५) ५५५-२६७१ today", "(४१५) ५५५-२६७१", "PHONE_NUMBER"),
    ("ssn ٢١٩-٠٩-٩٩٩٩ ok", "٢١٩-٠٩-٩٩٩٩", "US_SSN"),
    ("card 4111\u20131111\u20131111\u20131111 x", "4111\u20131111\u20131111\u20131111", "CREDIT_CARD"),
    ("card 4111\u20111111\u20111111\u20111111 x", "4111\u20111111\u20111111\u20111111", "CREDIT_CARD"),
    ("card 4111\u22121111\u22121111\u22121111 x", "4111\u22121111\u22121111\u22121111", "CREDIT_CARD"),
    ("ssn 219\u201309\u20139999 ok", "219\u201309\u20139999", "US_SSN"),
    ("mail bob@example\u3002com now", "bob@example\u3002com", "EMAIL_ADDRESS"),
    ("card 4111\u034f1111\u034f1111\u034f1111 x", "4111\u034f1111\u034f1111\u034f1111", "CREDIT_CARD"),
    ("card 4111\ufe0f1111\ufe0f1111\ufe0f1111 x", "4111\ufe0f1111\ufe0f1111\ufe0f1111", "CREDIT_CARD"),
    (f"key sk-proj-\ufe0f{KEY[8:]} x", f"sk-proj-\ufe0f{KEY[8:]}", "OPENAI_API_KEY"),
]


@pytest.mark.parametrize(("text", "value", "entity"), VARIANTS)
def test_a_script_or_punctuation_variant_is_found_and_its_original_characters_replaced(
    redactor: Redactor, text: str, value: str, entity: str
) -> None:
    spans = redactor.engine.detect(text)
    assert [(s.entity, text[s.start : s.end]) for s in spans] == [(entity, value)]


@pytest.mark.parametrize(
    "text",
    [
        "في عام ٢٠٢٤ بلغ العدد ١٢٣ طالبا",  # a year and a count in Arabic-Indic digits
        "pages 10\u201320 and 2019\u20132024",  # en-dash ranges
        "temperature \u22125 to \u221212 degrees",
        "order ۱۲۳۴۵ shipped",
    ],
)
def test_ordinary_numbers_in_other_scripts_and_ranges_stay(redactor: Redactor, text: str) -> None:
    assert redactor.engine.detect(text) == ()


@pytest.fixture(scope="module")
def gw(fake_upstream, tmp_path_factory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("redaction-scripts")
    overrides = {**PASS_THROUGH, "redaction": {"enabled": True}}
    with running_gateway(gateway_settings(root, fake_upstream.base_url, **overrides)) as running:
        yield running


def _leaks(body: bytes) -> list[str]:
    sent = orjson.loads(body)
    text = orjson.dumps(sent).decode("utf-8")
    return [value for _, value, _ in VARIANTS if value in text]


def test_no_variant_reaches_the_upstream_by_any_endpoint(gw, upstream) -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    texts = [text for text, _, _ in VARIANTS]
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": t} for t in texts])
    assert _leaks(upstream.requests[-1].body) == []
    client.responses.create(
        model="gpt-test",
        input=[{"role": "user", "content": [{"type": "input_text", "text": t}]} for t in texts],
    )
    assert _leaks(upstream.requests[-1].body) == []
    client.embeddings.create(model="embed-test", input=texts)
    assert _leaks(upstream.requests[-1].body) == []


#: Query values a client encoded twice, or as UTF-8 escapes of look-alike characters.
URLS = [
    ("https://img.example/a.png?e=jane.roe%2540example.com&x=1", "jane.roe%2540example.com"),
    ("https://img.example/a.png?e=jane.roe%EF%BC%A0example.com&x=1", "jane.roe%EF%BC%A0example.com"),
    (
        "https://img.example/a.png?c=" + "%20".join(["%D9%A4" + "%D9%A1" * 3] + ["%D9%A1" * 4] * 3),
        "%20".join(["%D9%A4" + "%D9%A1" * 3] + ["%D9%A1" * 4] * 3),
    ),
]


def test_an_image_url_encoded_twice_or_as_utf8_escapes_does_not_reach_the_upstream(gw, upstream) -> None:
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    clean = "https://img.example/100%25/a%2Fb.png?q=50%25off&bad=%C3%28%E2%82"
    parts = [{"type": "image_url", "image_url": {"url": url}} for url, _ in URLS]
    parts.append({"type": "image_url", "image_url": {"url": clean}})
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": parts}])
    sent = [p["image_url"]["url"] for p in orjson.loads(upstream.requests[-1].body)["messages"][0]["content"]]
    for (url, value), out in zip(URLS, sent, strict=False):
        before, after = url.split(value)
        # only the value's escapes are replaced, whole, by one placeholder
        assert re.fullmatch(
            re.escape(before) + r"<(EMAIL_ADDRESS|CREDIT_CARD)_\d+>" + re.escape(after), out
        ), out
    assert sent[-1] == clean  # escapes that are not an entity stay as they were
