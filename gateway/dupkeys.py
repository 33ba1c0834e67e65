"""Duplicate object keys in JSON from outside the gateway: found, and located for the error.

Why refuse them: JSON parsers disagree on ``{"amount": 5, "amount": 5000}``. orjson (what the
guards read) and most others keep the last value, some keep the first, some refuse. A body or
an answer whose duplicate keys a guard reads one way and a client (or the provider) reads the
other way lets a request or a tool call through that the guard never saw. So every client
body, every provider answer and every stream event the gateway reads is refused when any of
its objects repeats a key (after unescaping: ``"a"`` and ``"\\u0061"`` are the same key).

Stream events: checked when read (``SSEEvent.json``), and read wherever anything is decided
on them, so not each one the gateway forwards:

- with a guard that reads streams, every event is read: the policy and approval stages and
  ``stream_trust`` (responses) parse each one; redaction parses each one except the
  content-only chat chunks it recognises byte for byte (``redaction/chat_splice.py``), a
  strict pattern of fixed, distinct keys in which no key can repeat (an event that repeats one
  does not match, so it is parsed and refused);
- with none (pass-through), an event is read only for its usage (to settle) and for a provider
  error, each found by a substring test and then read and checked. An event those tests skip
  (a repeated ``"usage":null``, an escaped key) is not read: the call is then settled at its
  reservation, never below it, and the error reaches the client as the provider sent it. Every
  other event is forwarded byte for byte, unread: the gateway decides nothing on it, so no
  reading of it can differ from the client's. Checking it anyway would cost a parse and a
  re-serialisation per event (a 229-byte chunk: 5.6-8.1 us in three runs on a loaded 2-core
  machine, where a substring test took 1.1-1.7 us: several times the per-event relay cost,
  milliseconds on a 700-chunk answer) on the path the overhead benchmark measures, to protect
  a decision nobody makes.

``tests/core/test_core_duplicate_keys_in_streams.py`` pins both.

How, fast: orjson cannot report duplicates. First the common case: when the sender wrote
compact JSON the way orjson does (httpx, so the openai SDK, and JSON.stringify do; so do most
OpenAI-compatible servers), ``orjson.dumps(parsed) == raw`` holds, and since a parsed object
cannot hold a key twice, neither can ``raw``: one C serialisation and a memcmp. Then JSON
written with spaces (``json.dumps``' default separators, pretty printing, curl by hand) and
without a backslash: no escape in ``raw`` means every ``"`` in it delimits a string and the
strings orjson writes back are byte-identical, so with all whitespace deleted from both texts
(``bytes.replace``, C) they are equal exactly when every object kept all its members; a
repeated key drops one. A text with escapes, or numbers written another way (``1e2``), fails
the comparison and goes on to the exact check. Otherwise
``jiter`` (the Rust parser the openai SDK already depends on) reads it with
``catch_duplicate_keys``. Measured in one run on a loaded 2-core machine (the ratios matter):
a 237-byte chat body 0.18 µs (jiter 1.0, orjson's own parse 0.5), a 661-byte answer 1.3 µs
(jiter 9.1, parse 3.5), a 457-byte usage chunk 0.4 µs (jiter 7.0). Only a refusal pays for
``locate``: the stdlib parser with an ``object_pairs_hook`` that finds where the first
duplicate sits, for the error's ``param``.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jiter
import orjson

_DUPLICATE = "Detected duplicate key"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_KEY = 64
_UNREAD = object()


def has_duplicate(raw: bytes, parsed: Any = _UNREAD) -> bool:
    """Whether some object in the JSON document ``raw`` repeats a key.

    ``parsed`` is what orjson read from ``raw`` (the caller parsed it already); a scalar
    cannot repeat a key. ``raw`` should already have been accepted by the caller's parser:
    a document jiter cannot read for another reason (nesting past its ~200 levels) is checked
    by the slow path instead, and one that is not JSON at all is "no duplicate" (invalid JSON
    is the caller's own error to report)."""
    if parsed is not _UNREAD:
        if not isinstance(parsed, dict | list):
            return False
        try:
            written = orjson.dumps(parsed)
        except orjson.JSONEncodeError:  # nesting orjson cannot write back: read it with jiter
            pass
        else:
            if written == raw:
                return False
            if b"\\" not in raw and _squeezed(written) == _squeezed(raw):
                return False
    try:
        jiter.from_json(raw, catch_duplicate_keys=True, cache_mode="keys")
    except ValueError as exc:
        if str(exc).startswith(_DUPLICATE):
            return True
        return locate(raw) is not None
    return False


def _squeezed(doc: bytes) -> bytes:
    """``doc`` without JSON's whitespace characters, wherever they are (strings included).
    ``replace`` per character (memchr speed) rather than ``translate``, which costs ~15
    instructions a byte: measured at ~7,400 instructions per 240-byte body and its copy."""
    doc = doc.replace(b" ", b"")
    for ws in (b"\n", b"\r", b"\t"):
        if ws in doc:
            doc = doc.replace(ws, b"")
    return doc


def locate(raw: bytes) -> str | None:
    """The path of the first repeated key (``messages[0].role``), or None if there is none."""
    try:
        doc = json.loads(raw, object_pairs_hook=_pairs)
    except (ValueError, RecursionError):
        return None
    return _find(doc, "")


class _Repeated:
    """Stands in for an object that repeated ``key``, so the walk can name where it was."""

    __slots__ = ("key", "obj")

    def __init__(self, key: str, obj: dict[str, Any]) -> None:
        self.key = key
        self.obj = obj


def _pairs(pairs: list[tuple[str, Any]]) -> Any:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            return _Repeated(key, obj)
        obj[key] = value
    return obj


def _find(node: Any, path: str) -> str | None:
    if isinstance(node, _Repeated):
        inner = _find(node.obj, path)  # a duplicate deeper inside comes first in the document
        return inner if inner is not None else _join(path, node.key)
    if isinstance(node, dict):
        for key, value in node.items():
            found = _find(value, _join(path, key))
            if found is not None:
                return found
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found = _find(value, f"{path}[{i}]")
            if found is not None:
                return found
    return None


def _join(path: str, key: str) -> str:
    """``a.b`` for plain names, ``a["we ird"]`` otherwise (escaped: the key is the caller's
    text and ends up in an error message); keys longer than 64 characters are shortened."""
    plain = _NAME.fullmatch(key) is not None
    if len(key) > _MAX_KEY:
        key = key[:_MAX_KEY] + "…"
    if plain:
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key)}]"
