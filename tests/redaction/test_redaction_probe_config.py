"""A careless operator's redaction config: ``actions`` replaces the default list, so copying
the README's per-direction example (one or two types) stops detecting every other type,
secrets included. That stays the documented cost knob, but it is never silent: the start-up
log names each default type the list leaves out (names only, never a value)."""

from __future__ import annotations

import logging

import pytest

from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings

KEY = "sk-proj-T3stKeyAbc123DEF456ghi789JKL012mno345PQR"


def test_an_actions_list_without_the_secrets_is_named_at_start(caplog: pytest.LogCaptureFixture) -> None:
    settings = RedactionSettings(
        hash_salt="test-salt-0123456789", actions={"EMAIL_ADDRESS": {"prompt": "restore", "answer": "allow"}}
    )
    with caplog.at_level(logging.WARNING, logger="wardgate.redaction"):
        redactor = build(settings)
    warned = [r.getMessage() for r in caplog.records if "not detected at all" in r.getMessage()]
    assert len(warned) == 1
    assert "OPENAI_API_KEY" in warned[0] and "CREDIT_CARD" in warned[0] and "EMAIL_ADDRESS," not in warned[0]
    # what the warning is about: the key is not found any more
    assert redactor.engine.detect(f"key {KEY}") == ()


def test_the_default_actions_start_without_that_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="wardgate.redaction"):
        build(RedactionSettings(hash_salt="test-salt-0123456789"))
    assert not [r for r in caplog.records if "not detected at all" in r.getMessage()]
