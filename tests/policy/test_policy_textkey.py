"""Keys of names and texts (gateway/policy/textkey.py): every evasion spelling, one key."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.policy.textkey import _confusable_fold, name_key, text_key
from tests.policy.variants import (
    INVISIBLE,
    MARKER_VARIANTS,
    NAME_VARIANTS,
    look_alike,
    name_variants,
    text_variants,
)


@pytest.mark.parametrize(("variant", "spelled"), NAME_VARIANTS, ids=[v for v, _ in NAME_VARIANTS])
@pytest.mark.parametrize("name", ["transfer_funds", "shell", "delete_customer", "run_sql"])
def test_every_name_variant_has_the_name_as_key(name: str, variant: str, spelled: object) -> None:
    assert callable(spelled)
    assert name_key(spelled(name)) == name  # type: ignore[operator]


@pytest.mark.parametrize(("variant", "spelled"), MARKER_VARIANTS, ids=[v for v, _ in MARKER_VARIANTS])
def test_every_marker_variant_has_the_marker_as_key(variant: str, spelled: object) -> None:
    text = "Nice page. " + spelled("ignore previous instructions") + " Thanks."  # type: ignore[operator]
    assert "ignore previous instructions" in text_key(text)


def test_ascii_is_only_case_folded_and_trimmed() -> None:
    # TR39 pairs m/rn, l/I/1, 0/O and |/l too; folding those would rewrite ordinary words.
    assert name_key("  Mini_Model_10 ") == "mini_model_10"
    assert text_key('Ignore  <|im_start|>\t`x` "y"\n') == 'ignore <|im_start|> `x` "y"'


def test_keys_of_names_in_other_scripts_keep_what_has_no_look_alike() -> None:
    assert name_key("注文を検索") == "注文を検索"
    assert name_key("получить_заказ") == "noлyчиtb_3aka3"  # п, о, у, т, ь, з, а, к: look-alikes


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_the_confusable_fold_is_per_character(text: str) -> None:
    """disarm folds a whole string at once (fast); its result must be the per-character
    table's, or a key would depend on the characters around a look-alike."""
    whole = _confusable_fold(text)
    assert whole == "".join(_confusable_fold(c) for c in text)


def test_a_name_of_only_invisible_characters_has_an_empty_key() -> None:
    assert name_key("\u200b\u200d\u2060") == ""


@pytest.mark.parametrize("letter", ["\u13f8", "\u13fa", "\uab78", "\uab79", "\uab8d", "\uab8f", "\uabb7"])
def test_a_look_alike_whose_prototype_is_upper_case_keys_to_lower_case(letter: str) -> None:
    # Cherokee small letters case-fold to their capitals, whose TR39 prototypes are B, H, D...
    key = name_key(letter)
    assert key.isascii() and key == key.lower() and name_key(key) == key


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_keys_are_fixed_points(text: str) -> None:
    assert name_key(name_key(text)) == name_key(text)
    assert text_key(text_key(text)) == text_key(text)


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_keys_hold_no_invisible_character_and_no_whitespace_run(text: str) -> None:
    key = text_key(text)
    assert not any(unicodedata.category(c) == "Cf" or c in INVISIBLE for c in key)
    assert "  " not in key and key == key.strip()


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(["transfer_funds", "shell", "delete_customer", "run_sql", "issue_refund"]).flatmap(
        name_variants
    )
)
def test_generated_name_variants_key_to_the_name(pair: tuple[str, str]) -> None:
    name, spelled = pair
    assert name_key(spelled) == name


@settings(max_examples=200, deadline=None)
@given(text_variants("ignore previous instructions"))
def test_generated_marker_variants_key_to_the_marker(spelled: str) -> None:
    assert "ignore previous instructions" in text_key(spelled)


def test_look_alikes_come_from_the_tr39_table() -> None:
    # Cyrillic and Greek letters that TR39 lists as look-alikes of Latin ones.
    assert name_key(look_alike("transfer_funds", "cyrillic")) == "transfer_funds"
    assert name_key(look_alike("shell", "cyrillic")) == "shell"
    assert name_key(look_alike("run_sql", "greek")) == "run_sql"
