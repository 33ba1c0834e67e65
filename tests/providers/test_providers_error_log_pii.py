"""A provider's error text is logged without the PII it may quote (e-mails, long numbers)."""

from __future__ import annotations

import logging

import orjson
import pytest

from gateway.providers.errors import status_error, stream_error

QUOTED = (
    "Invalid content near 'mail jane.doe@example.com or call +1 (415) 555-2671, card 4111 1111 1111 1111'"
)
LEAKS = ("jane.doe@example.com", "555-2671", "4111 1111")


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if r.name == "wardgate.providers")


def test_a_status_error_message_is_logged_without_pii(caplog: pytest.LogCaptureFixture) -> None:
    body = orjson.dumps({"error": {"message": QUOTED, "code": "invalid_request"}})
    with caplog.at_level(logging.WARNING, "wardgate.providers"):
        status_error(400, body, {}, "openai", (), "req-1")
    text = _logged(caplog)
    assert "Invalid content near" in text and "invalid_request" in text  # still useful at 3 a.m.
    assert not [leak for leak in LEAKS if leak in text], text


def test_a_body_that_is_not_json_is_logged_without_pii(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "wardgate.providers"):
        status_error(502, QUOTED.encode(), {}, "openai", (), "req-2")
    text = _logged(caplog)
    assert "HTTP 502" in text
    assert not [leak for leak in LEAKS if leak in text], text


def test_a_mid_stream_error_event_is_logged_without_pii(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, "wardgate.providers"):
        stream_error({"error": {"message": QUOTED, "code": "server_error"}}, "openai", (), "req-3")
    text = _logged(caplog)
    assert "mid-stream" in text and "server_error" in text
    assert not [leak for leak in LEAKS if leak in text], text


def test_short_numbers_and_versions_stay_readable(caplog: pytest.LogCaptureFixture) -> None:
    body = orjson.dumps({"error": {"message": "max_tokens 4096 exceeds 2048 for model v1.2.3", "code": None}})
    with caplog.at_level(logging.WARNING, "wardgate.providers"):
        status_error(400, body, {}, "openai", (), "req-4")
    assert "max_tokens 4096 exceeds 2048 for model v1.2.3" in _logged(caplog)
