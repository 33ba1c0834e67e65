"""Values a path, a URI or an identifier glues to its neighbours: an address at the end of a
path (``kb://customers/jane.roe@example.com``: Presidio read ``customers`` as the host and
dropped it), a card, an SSN or a prefixed key glued to ``_`` (``refund_4111111111111111``:
Presidio's ``\\b`` sees no boundary after ``_``; ``key_sk-…``). Each is found exactly, with
and without the pre-filter; ids that only look like them stay untouched."""

from __future__ import annotations

import pytest

from gateway.redaction.glued import unglued
from gateway.redaction.redactor import Redactor

FOUND = [
    ("see kb://customers/jane.roe@example.com now", "jane.roe@example.com", "EMAIL_ADDRESS"),
    ("a b/jane.roe@example.com", "jane.roe@example.com", "EMAIL_ADDRESS"),
    ("path/to/jane@example.com/", "jane@example.com", "EMAIL_ADDRESS"),
    ("GET /users/x?id#jane@example.com HTTP/1.1", "jane@example.com", "EMAIL_ADDRESS"),
    ("mailto:jane@example.com", "jane@example.com", "EMAIL_ADDRESS"),
    ("(jane@example.com)", "jane@example.com", "EMAIL_ADDRESS"),
    ("<jane@example.com>", "jane@example.com", "EMAIL_ADDRESS"),
    ("refund_4111111111111111", "4111111111111111", "CREDIT_CARD"),
    ("card_4111111111111111 ok", "4111111111111111", "CREDIT_CARD"),
    ("4111111111111111_x", "4111111111111111", "CREDIT_CARD"),
    ("__4111-1111-1111-1111__", "4111-1111-1111-1111", "CREDIT_CARD"),
    ("id-4111111111111111", "4111111111111111", "CREDIT_CARD"),
    ("user_536-22-1234_file.txt", "536-22-1234", "US_SSN"),
    ("/users/536-22-1234/", "536-22-1234", "US_SSN"),
    ("user_ssn_536221234", "536221234", "US_SSN"),  # an unseparated SSN after its glued label
    ("SSN_536221234 on file", "536221234", "US_SSN"),
    ("x_sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "STRIPE_API_KEY"),
    ("key_sk-proj-Ab3dEf7hIjK1mN0pQrS9uVwX", "sk-proj-Ab3dEf7hIjK1mN0pQrS9uVwX", "OPENAI_API_KEY"),
    (
        "tok_ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "GITHUB_TOKEN",
    ),
    ("t_eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "JWT"),
]

CLEAN = [
    "x4111111111111111",  # glued to a letter: an id, as in Presidio
    "41111111111111112",  # a longer digit run
    "refund_4111111111111112",  # Luhn-invalid
    "order_12345 v1_2_3 build_2024_05_06",
    "sha_9f86d081884c7d659a2feaea0c55ad015a3bf4f1b2b0b823cd15d6c15b0f00a0",
    "u_123e4567-e89b-12d3-a456-426614174000",
    "kb://customers/jane.roe@localhost and a/b@host",  # no registrable domain after the path
    "see docs/a.b/c@v2 and x/@example.com",
    "ts_1700000000123 and run_123456789",
    "class_ssn_12345 lessn_536221234 ssn_000000000",
    "is_sk_live_mode use_sk_test_keys task-abcdefghijklmnopqrstuvwxyz my_task_sk-short",
]


@pytest.mark.parametrize(("text", "value", "entity"), FOUND)
def test_a_glued_value_is_found_exactly(redactor: Redactor, text: str, value: str, entity: str) -> None:
    spans = redactor.engine.detect(text)
    assert [(s.entity, text[s.start : s.end]) for s in spans] == [(entity, value)]
    assert spans == redactor.engine.detect(text, prefilter=False)


@pytest.mark.parametrize("text", CLEAN)
def test_a_glued_look_alike_is_left_alone(redactor: Redactor, text: str) -> None:
    assert redactor.engine.detect(text) == ()
    assert redactor.engine.detect(text, prefilter=False) == ()


def test_only_the_outer_word_boundaries_change() -> None:
    assert unglued(r"\b\d{9}\b") == r"(?<![^\W_])\d{9}(?![^\W_])"
    assert unglued(r"x\\b") == r"x\\b"  # an escaped backslash then "b" is no boundary
