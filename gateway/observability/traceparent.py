"""Read the trace id from a W3C ``traceparent`` header without loading OpenTelemetry.

With tracing off the audit event still carries the agent's trace id, so an event can be found
from the agent's own trace; this parser keeps that free of the SDK import.
"""

from __future__ import annotations

import re

_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def trace_id_of(traceparent: str | None) -> str | None:
    """The trace id of a valid ``traceparent`` (version ff and all-zero ids are invalid)."""
    if not traceparent:
        return None
    value = traceparent.strip().lower()
    m = _TRACEPARENT.match(value)
    if m is None or m.group(1) == "ff" or m.group(2) == _ZERO_TRACE or m.group(3) == _ZERO_SPAN:
        return None
    if m.group(1) == "00" and len(value) != 55:  # version 00 allows nothing after the flags
        return None
    return m.group(2)
