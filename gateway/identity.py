"""The one rule for identity values a caller sends: agent, run, parent run and request ids.

Why a strict charset: these values are copied verbatim into the audit log (and its CSV
export), the policy input, response headers, traces and the approval queue, and an agent
chooses them freely. A free-form value could carry a secret, a person's name or email, a
newline that forges a log line, a control character, or a spreadsheet formula. So an id is
1..128 characters from ``A-Z a-z 0-9 . _ : / + = -``, starting with a letter or a digit (no
spaces, no ``@``: an email address or a sentence cannot be an id), and it must not contain
something shaped like an API key or token (``wg-…``, ``sk-…``, a JWT, an AWS key id): an agent
that sends its own key as its id gets a 400, not an audit log full of keys.

Cost on the hot path: one fullmatch of one compiled pattern per id sent (~0.4 µs for a
24-character id); the credential pattern runs only when a cheap substring test finds one of
its prefixes, and the diagnosis of a refusal only on the error path.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.errors import BadRequest

MAX_ID_LEN = 128
ID_CHARS = "A-Z a-z 0-9 . _ : / + = -"

#: Substrings shaped like credentials (kept in step with ``audit.scrub``'s secret values, but
#: anchored so an id such as ``task-0123456789abcdef0123`` is not mistaken for ``sk-…``).
_SECRET_SHAPES = (
    r"(?<![A-Za-z0-9])(?:wg|sk)-[A-Za-z0-9_-]{16}"
    r"|eyJ[A-Za-z0-9_-]{8,}\.eyJ"
    r"|(?<![A-Za-z0-9])AKIA[0-9A-Z]{16}"
)
_SECRET = re.compile(_SECRET_SHAPES)
_ID = re.compile(rf"[A-Za-z0-9][A-Za-z0-9._:/+=-]{{0,{MAX_ID_LEN - 1}}}")


def valid_id(value: str) -> bool:
    if _ID.fullmatch(value) is None:
        return False
    # A search for the credential shapes costs ~1 µs per 24 characters; a substring test, ~50 ns.
    if "wg-" in value or "sk-" in value or "eyJ" in value or "AKIA" in value:
        return _SECRET.search(value) is None
    return True


def check_id(value: Any, param: str, label: str) -> str:
    """``value`` if it is a valid id, else ``BadRequest`` naming ``param``.

    The message never quotes the value: it may be the very secret the rule keeps out.
    """
    if isinstance(value, str) and valid_id(value):
        return value
    raise invalid_id(value, param, label)


def invalid_id(value: Any, param: str, label: str) -> BadRequest:
    if not isinstance(value, str):
        reason = "must be a string"
    elif not value:
        reason = "must not be empty"
    elif len(value) > MAX_ID_LEN:
        reason = f"is {len(value)} characters long; the limit is {MAX_ID_LEN}"
    elif _ID.fullmatch(value) is None:
        reason = f"may only contain {ID_CHARS} and must start with a letter or a digit"
    elif _SECRET.search(value) is not None:
        reason = "looks like it contains an API key or token; ids are logged, so they must not carry secrets"
    else:  # pragma: no cover - the cases above cover every way the pattern can fail
        reason = "is not a valid id"
    return BadRequest(
        f"'{label}' {reason} (1-{MAX_ID_LEN} characters from {ID_CHARS}, starting with a letter or a digit).",
        param=param,
    )
