"""Defence in depth for ``record(kind, payload)``: secrets and content never reach the store.

Call events are built from a whitelist of ``Call`` fields and never need this. Payloads from
other areas (approvals, admin actions, policy revisions) are free-form, so values under
secret-sounding keys, and strings that look like API keys or bearer tokens wherever they
appear, are replaced by ``[redacted]`` before the event is sealed.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "[redacted]"

_SECRET_KEYS = frozenset(
    {
        "key",
        "api_key",
        "apikey",
        "admin_key",
        "secret",
        "client_secret",
        "password",
        "passwd",
        "token",
        "access_token",
        "refresh_token",
        "authorization",
        "bearer",
        "cookie",
        "private_key",
    }
)

_SECRET_VALUE = re.compile(
    r"(?:wg-|sk-(?:proj-|ant-)?)[A-Za-z0-9_\-]{16,}"  # gateway / OpenAI / Anthropic keys
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]+"  # JWT
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----"
    r"|(?i:bearer\s+)[A-Za-z0-9._\-]{16,}"
)

#: The shortest text ``_SECRET_VALUE`` can match (``wg-`` or ``sk-`` and 16 more; the test
#: derives it from the pattern). Most strings of an event are shorter (ids, names, methods,
#: outcomes): ``clean`` tests the length instead of calling ``search`` for those, the bulk of
#: ~26 ``re`` calls per MCP event. (One search over all the strings joined was tried: slower,
#: as ``search`` rejects a text shorter than the pattern's least width before scanning it.)
MIN_SECRET_LEN = 19


def may_hold_secret(text: str) -> bool:
    """False only when ``_SECRET_VALUE`` cannot match ``text``: shorter than its least width,
    or none of the characters every alternative needs (``wg-``/``sk-``/``-----BEGIN`` a
    ``-``, ``AKIA``, ``eyJ``, and ``bearer`` in any case an ``r`` or ``R``: no other character
    folds to them). ``in`` is C string search, several times cheaper than ``search`` on the
    long hex ids and revisions an event holds."""
    return len(text) >= MIN_SECRET_LEN and (
        "-" in text or "r" in text or "R" in text or "AKIA" in text or "eyJ" in text
    )


_MAX_DEPTH = 12

#: Keys whose values are content, not metadata: an approval's tool-call arguments, a request's
#: messages. Audit events say *that* a tool was called and which, never with what.
_CONTENT_KEYS = frozenset({"arguments", "messages", "content", "prompt", "input", "output", "body", "answer"})
OMITTED = "[omitted]"


def scrub(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` with secret-looking content replaced; never mutates the input."""
    if depth > _MAX_DEPTH:
        return REDACTED
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            key = str(k)
            if key.lower() in _SECRET_KEYS and v not in (None, ""):
                out[key] = REDACTED
            else:
                out[key] = scrub(v, depth + 1)
        return out
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v, depth + 1) for v in value]
    if isinstance(value, str):
        return _SECRET_VALUE.sub(REDACTED, value) if _SECRET_VALUE.search(value) else value
    return value


def scrub_text(text: str) -> str:
    """``text`` with anything shaped like an API key or token replaced (logs, error messages)."""
    return _SECRET_VALUE.sub(REDACTED, text)


def drop_content(value: Any, depth: int = 0) -> Any:
    """A copy of ``value`` with content-bearing fields replaced by ``[omitted]``."""
    if depth > _MAX_DEPTH:
        return OMITTED
    if isinstance(value, dict):
        return {
            k: (
                OMITTED
                if str(k).lower() in _CONTENT_KEYS and v not in (None, "", [], {})
                else drop_content(v, depth + 1)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [drop_content(v, depth + 1) for v in value]
    return value


def clean(value: Any, depth: int = 0) -> Any:
    """``scrub(drop_content(value))`` in one walk: what ``record(kind, payload)`` stores.

    Every MCP request and every approval change records a payload; two walks of it (two
    copies, every key lowered twice) were ~60% of building its event. Equal to the two walks
    on every value (``tests/audit/test_audit_scrub_clean.py``); those stay the definition."""
    if depth > _MAX_DEPTH:
        return REDACTED
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        inner = depth + 1
        for k, v in value.items():
            key = str(k)
            low = key.lower()
            if low in _CONTENT_KEYS and v not in (None, "", [], {}):
                out[key] = REDACTED if inner > _MAX_DEPTH else OMITTED
            elif low in _SECRET_KEYS:
                out[key] = REDACTED if inner > _MAX_DEPTH or v not in (None, "") else v
            elif isinstance(v, str):
                out[key] = (
                    REDACTED
                    if inner > _MAX_DEPTH
                    else _SECRET_VALUE.sub(REDACTED, v)
                    if may_hold_secret(v) and _SECRET_VALUE.search(v)
                    else v
                )
            else:
                out[key] = clean(v, inner)
        return out
    if isinstance(value, list | tuple):
        return [clean(v, depth + 1) for v in value]
    if isinstance(value, set | frozenset):
        return [scrub(v, depth + 1) for v in value]
    if isinstance(value, str):
        if may_hold_secret(value) and _SECRET_VALUE.search(value):
            return _SECRET_VALUE.sub(REDACTED, value)
        return value
    return value
