"""``clean`` (the one walk ``record`` uses) equals ``scrub(drop_content(...))`` on every value.

The two walks stay the definition of what an event built from a free-form payload may hold
(no secrets, no content); ``clean`` is only their speed. Generated values mix the keys both
walks look for (content keys, secret keys, in any case), secret-shaped strings, the empty
values a content key keeps, tuples and sets, and nesting past the depth limit.
"""

from __future__ import annotations

import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.audit.scrub import _SECRET_VALUE, MIN_SECRET_LEN, clean, drop_content, may_hold_secret, scrub

KEYS = st.sampled_from(
    [
        "arguments",
        "Messages",
        "content",
        "input",
        "token",
        "API_KEY",
        "authorization",
        "tool",
        "name",
        "x",
        1,
        None,
    ]
)
STRINGS = st.sampled_from(
    [
        "",
        "plain",
        "wg-" + "a" * 20,
        "Bearer abcdefghijklmnopqrstu",
        "sk-proj-" + "B" * 24,
        "[omitted]",
        "[redacted]",
    ]
) | st.text(max_size=6)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | STRINGS
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.tuples(inner, inner)
        | st.frozensets(SCALARS, max_size=3)
        | st.sets(st.tuples(STRINGS, STRINGS), max_size=2)
        | st.dictionaries(KEYS, inner, max_size=4)
        | st.just([])
        | st.just({})
    ),
    max_leaves=40,
)


def _deep(value: Any, levels: int, key: Any) -> Any:
    """``value`` under ``key`` at dict depth ``levels - 1`` (the depth limit is 12)."""
    value = {key: value, "s": "plain", "w": "wg-" + "c" * 20}
    for i in range(levels - 1):
        value = {f"k{i}": value}
    return value


@settings(max_examples=800, deadline=None)
@given(value=VALUES, levels=st.integers(0, 15), key=KEYS)
def test_clean_is_scrub_of_drop_content(value: Any, levels: int, key: Any) -> None:
    doc = _deep(value, levels, key)
    assert clean(doc) == scrub(drop_content(doc))
    assert clean(value) == scrub(drop_content(value))


def test_around_the_depth_limit() -> None:
    """Every kind of key and value at the depths where either walk stops."""
    keys = ["content", "token", "name", 3]
    values: list[Any] = [
        None,
        "",
        "plain",
        "wg-" + "d" * 20,
        [],
        {},
        {"a": "b"},
        ["x"],
        ("y",),
        frozenset({"z"}),
        7,
    ]
    for levels in range(10, 16):
        for key in keys:
            for value in values:
                doc = _deep(value, levels, key)
                assert clean(doc) == scrub(drop_content(doc)), (levels, key, value)


def test_an_mcp_payload() -> None:
    payload = {
        "request_id": "mcp_1",
        "principal": {"key_id": "k", "team": "t", "user": "u", "roles": [], "tags": {}},
        "mcp": {
            "target": "lookup_order",
            "reasons": ["Bearer abcdefghijklmnopqrstuvwxyz leaked"],
            "redaction": {"arguments": {"entities": {"EMAIL_ADDRESS": 1}}, "result": {"entities": {}}},
        },
    }
    out = clean(payload)
    assert out == scrub(drop_content(payload))
    assert out["mcp"]["redaction"]["arguments"] == "[omitted]"
    assert "abcdefghijklmnopqrstuvwxyz" not in str(out)


#: Pieces of every alternative of the secret pattern, the joining character, whitespace that
#: ``\s`` takes (JSON would escape most of it), JSON escapes themselves and non-ASCII: joined
#: at random they make secrets that are whole, split across two strings, or broken by a
#: character the pattern does not take.
PIECES = st.sampled_from(
    [
        "wg-",
        "sk-",
        "sk-proj-",
        "sk-ant-",
        "AKIA",
        "ABCDEFGH",
        "eyJ",
        "abcdefgh",
        ".",
        "-----BEGIN ",
        "RSA ",
        "PRIVATE KEY-----",
        "Bearer",
        "bEaReR",
        "BEARER",
        "bearer",
        "AKIAABCDEFGHIJKLMNOP",
        "eyJabcdefgh.abcdefgh.x",
        " ",
        "\t",
        "\n",
        "\x0b",
        "\x1c",
        "\x85",
        "\u2028",
        "\x00",
        '"',
        '\\"',
        "\\\\",
        "\\u0041",
        "é",
        "_-",
        "0123456789",
    ]
)
TEXTS = st.lists(PIECES, max_size=12).map("".join)


def test_no_secret_is_shorter_than_the_length_clean_skips() -> None:
    """``clean`` does not search a string shorter than ``MIN_SECRET_LEN``: the pattern's least
    width (every alternative, case folding included, matches one character per character)."""
    assert re._parser.parse(_SECRET_VALUE.pattern).getwidth()[0] == MIN_SECRET_LEN  # type: ignore[attr-defined]
    assert _SECRET_VALUE.fullmatch("wg-" + "a" * 16)
    assert not _SECRET_VALUE.search("wg-" + "a" * 15)


@settings(max_examples=1500, deadline=None)
@given(texts=st.lists(TEXTS, min_size=1, max_size=6))
def test_secret_shaped_strings_of_every_length(texts: list[str]) -> None:
    """Strings around the length ``clean`` skips, with escapes and whitespace inside."""
    for text in texts:
        if _SECRET_VALUE.search(text):
            assert len(text) >= MIN_SECRET_LEN
            assert may_hold_secret(text)
    payload = {"mcp": {"reasons": texts, "target": texts[0]}, "error": texts[-1], "x": [texts[-1]]}
    assert clean(payload) == scrub(drop_content(payload))
    assert clean(texts) == scrub(drop_content(texts))


def test_a_secret_of_the_least_length_is_redacted() -> None:
    payload = {"a": "wg-" + "a" * 16, "b": "wg-" + "a" * 15, "c": ["sk-" + "b" * 16]}
    assert clean(payload) == {"a": "[redacted]", "b": "wg-" + "a" * 15, "c": ["[redacted]"]}


def test_the_prefilter_passes_every_secret_shape() -> None:
    secrets = [
        "wg-" + "a" * 16,
        "sk-ant-" + "b" * 16,
        "AKIA" + "C" * 16,
        "eyJ" + "d" * 8 + "." + "e" * 8 + ".f",
        "-----BEGIN RSA PRIVATE KEY-----",
        "bEaReR\t" + "g" * 16,
        "BEARER " + "h" * 16,
    ]
    for text in secrets:
        assert _SECRET_VALUE.search(text) and may_hold_secret(text), text
    assert not may_hold_secret("mcp_" + "0123456789abcdef" * 2)
