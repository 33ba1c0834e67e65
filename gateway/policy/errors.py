"""The policy engines' errors, outside the ``engines`` package (whose ``__init__`` imports the
engine interface) so that what the interface depends on (``derived.py``) can raise them
without importing the interface back.

    PolicyError
    ├── PolicyCompileError   the set does not compile (``location`` = file:line)
    └── PolicyEvalError      no decision: engine error, timeout, unreachable, undefined
"""

from __future__ import annotations

import re

_LOCATION_RE = re.compile(r"([\w./\\-]+\.rego):(\d+)")


class PolicyError(Exception):
    """Base of the policy engines' errors."""


class PolicyCompileError(PolicyError):
    def __init__(self, message: str, location: str | None = None, engine: str | None = None) -> None:
        self.message = message.strip()
        self.location = location or find_location(message)
        self.engine = engine
        where = f"{self.location}: " if self.location else ""
        by = f" [{engine}]" if engine else ""
        super().__init__(f"{where}{self.message}{by}")


class PolicyEvalError(PolicyError):
    """The engine gave no usable decision. ``kind`` labels the metric."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


def find_location(message: str) -> str | None:
    """The first ``file.rego:line`` in an engine's error text."""
    m = _LOCATION_RE.search(message)
    return f"{m.group(1)}:{m.group(2)}" if m else None


def short_error(exc: BaseException, limit: int = 500) -> str:
    """An engine error without the native stack trace regorus appends."""
    text = str(exc).split("Stack backtrace:")[0].strip()
    return text[:limit]
