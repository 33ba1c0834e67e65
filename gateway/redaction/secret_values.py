"""What the value of a secret pattern must look like: the validators of ``secrets.py``.

Split out of ``secrets.py`` (module size): each takes the matched value and says whether it
is a value at all, not a placeholder, a template, a type name or code.
"""

from __future__ import annotations

import base64
import binascii
import re


def looks_random(token: str) -> bool:
    """A generated token, not a hyphenated English phrase (``sk-learn-compatible-wrapper``).

    Keys are base62/base64 noise: they contain a digit, or upper case letters inside words.
    Either alone is enough, so a key without a digit (rare, not impossible) is still found.
    """
    if any(c.isdigit() for c in token):
        return True
    inner_upper = sum(1 for i, c in enumerate(token) if c.isupper() and i > 0 and token[i - 1] not in "-_")
    return inner_upper >= 3


def has_digit(token: str) -> bool:
    return any(c.isdigit() for c in token)


def valid_ssn(value: str) -> bool:
    digits = "".join(c for c in value if c.isdigit())
    if len(digits) != 9 or len(set(digits)) == 1:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


#: Values after ``password:`` that are placeholders or templates, not a password.
PLACEHOLDER = re.compile(
    r"(?i:null|none|nil|true|false|undefined|required|optional|string|str|bytes|text|hidden|secret"
    r"|password|passwd|changeme|redacted|\*+|x+|\.+|-+|[$%<{\[(].*|.*[<>].*)"
)
#: An identifier, attribute path or call: code (``os.environ["X"]``, ``getpass()``) unless it
#: looks generated (``hunter2``, ``Tr0ub4dorXy``).
_CODE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(\(.*|\[.*)?")


def real_password(value: str) -> bool:
    """A value, not a placeholder, template, type name or expression."""
    if len(value) < 4 or PLACEHOLDER.fullmatch(value):
        return False
    code = _CODE.fullmatch(value)
    if code is None:
        return True
    return code.group(1) is None and "." not in value and looks_random(value)


#: An environment variable's or constant's name standing for the value (``YOUR_API_KEY``).
_CONSTANT = re.compile(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+")


def generated_secret(value: str) -> bool:
    """A value after a word that labels non-secrets too (``token``, ``secret``, ``api_key``):
    at least 8 characters, letters and digits or mixed case (``looks_random``), not a
    placeholder, template, constant's name or expression."""
    if len(value) < 8 or not any(c.isalpha() for c in value) or _CONSTANT.fullmatch(value):
        return False
    return real_password(value) and looks_random(value)


def basic_credentials(value: str) -> bool:
    """``Basic`` is followed by base64 of ``user:password`` (printable, with a colon)."""
    try:
        raw = base64.b64decode(value + "=" * (-len(value) % 4), validate=True)
    except (binascii.Error, ValueError):
        return False
    return b":" in raw and all(32 <= c < 127 for c in raw)
