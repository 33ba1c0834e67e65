"""The scheduling list in tests/conftest.py names files that exist (a renamed file would
silently fall back to collection order and could end the run alone again)."""

from __future__ import annotations

from tests.conftest import SLOW_FILES_FIRST
from tests.harness import REPO


def test_every_slow_file_first_exists_once() -> None:
    missing = [path for path in SLOW_FILES_FIRST if not (REPO / path).is_file()]
    assert missing == []
    assert len(set(SLOW_FILES_FIRST)) == len(SLOW_FILES_FIRST)
