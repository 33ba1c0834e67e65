"""The ``obfuscation`` member of stream chunks and events: replaced by a fresh pad of its length.

OpenAI pads every streamed chunk (chat) and delta event (responses) with a random string of
random length, so that the size of an encrypted chunk does not give away the length of its
token (a length side channel). It is text the client receives but no client reads as text,
and no recognizer could vouch for it (a 40-character random pad is exactly the shape of a
secret key). So it is neither scanned nor passed: the gateway writes its own random string of
the same length in its place. The padding still pads, whatever an upstream puts there (an
echo of the prompt, a key, a covert channel) never reaches the client, and it costs a slice
of a pool, not an analysis: every chunk of a real stream carries one (``chat_splice``).

A value that is not a string is no padding: it is scanned like a field no rule names.
"""

from __future__ import annotations

import os
from typing import Any

_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
#: A random byte -> a letter or digit (the first 8 a little more often: padding, not a key).
_TO_ALNUM = bytes(_ALPHABET[i % len(_ALPHABET)] for i in range(256))
_POOL_SIZE = 4096


class _Pool:
    """Random letters and digits, handed out in slices; refilled from ``os.urandom``."""

    __slots__ = ("at", "buf")

    def __init__(self) -> None:
        self.buf = b""
        self.at = 0

    def take(self, n: int) -> bytes:
        if n <= 0:
            return b""
        buf, at = self.buf, self.at
        if at + n > len(buf):
            if n > _POOL_SIZE:
                return os.urandom(n).translate(_TO_ALNUM)
            buf = self.buf = os.urandom(_POOL_SIZE).translate(_TO_ALNUM)
            at = 0
        self.at = at + n
        out = buf[at : at + n]
        # Another thread refilled the pool between the reads above: never a short pad.
        return out if len(out) == n else os.urandom(n).translate(_TO_ALNUM)


_POOL = _Pool()


def pad_bytes(n: int) -> bytes:
    """``n`` fresh random letters and digits (ASCII: as many bytes as characters)."""
    return _POOL.take(n)


def pad(n: int) -> str:
    return _POOL.take(n).decode("ascii")


def repad(obj: dict[str, Any]) -> bool:
    """Replace ``obj["obfuscation"]``, when it is a string, by a fresh pad of its length;
    True if it did (``obj`` must then be written again)."""
    value = obj.get("obfuscation")
    if type(value) is not str:
        return False
    obj["obfuscation"] = pad(len(value))
    return True
