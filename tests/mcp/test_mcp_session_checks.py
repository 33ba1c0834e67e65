"""``sessions``: a checked session id is remembered per key digest, and the remembered answer
is the HMAC's answer (another key, another server or a forged tag is still refused)."""

from __future__ import annotations

import pytest

from gateway.keys.store import hash_key
from gateway.mcp import sessions

KEY, OTHER = "wg-session-key-a", "wg-session-key-b"


def test_a_remembered_check_gives_the_hmac_answer_and_only_to_its_own_key() -> None:
    bound = sessions.bind(KEY, "crm", "up-1", hash_key(KEY))
    assert bound is not None and bound.startswith("up-1.")
    assert (hash_key(KEY), "crm", bound) in sessions._checked  # handed out: remembered
    assert sessions.unbind(KEY, "crm", bound, hash_key(KEY)) == "up-1"
    assert sessions.unbind(KEY, "crm", bound) == "up-1"  # the HMAC alone agrees
    with pytest.raises(sessions.SessionRefused):
        sessions.unbind(OTHER, "crm", bound, hash_key(OTHER))
    with pytest.raises(sessions.SessionRefused):
        sessions.unbind(KEY, "payments", bound, hash_key(KEY))


def test_a_refusal_is_not_remembered() -> None:
    forged = "up-2." + "0" * 32
    for _ in range(2):
        with pytest.raises(sessions.SessionRefused):
            sessions.unbind(KEY, "crm", forged, hash_key(KEY))
    assert (hash_key(KEY), "crm", forged) not in sessions._checked


def test_the_remembered_checks_are_bounded() -> None:
    for i in range(sessions._MAX_CHECKED + 10):
        sessions.bind(KEY, "crm", f"up-many-{i}", hash_key(KEY))
    assert len(sessions._checked) <= sessions._MAX_CHECKED
