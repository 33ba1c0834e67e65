"""Whether logprobs may go out beside a text redaction judged and left as it was.

Logprobs repeat the answer as tokens (``token``, ``bytes``) and add alternatives
(``top_logprobs``) the answer never contains. Redaction scans the answer's text, not them, so
they are kept only when their tokens spell exactly that text (both as ``token`` strings and as
``bytes``) and the alternatives, scanned together, hold no finding. Any shape this module does
not know (an extra key, a string where a number belongs) is not judged: the logprobs are
dropped (fail closed); an honest provider's logprobs of a clean answer are kept."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: True if redaction finds something in the text (it would change it).
Finds = Callable[[str], bool]

_ENTRY = frozenset({"token", "logprob", "bytes", "top_logprobs"})
_ALT = frozenset({"token", "logprob", "bytes"})
_CHAT = frozenset({"content", "refusal"})
_NUMBER = (float, int, type(None))


def _raw(value: Any, token: str) -> bytes | None:
    """An entry's ``bytes`` (a list of byte values), or its token's UTF-8 when there are none;
    None if ``bytes`` is anything else."""
    if value is None:
        return token.encode()
    if type(value) is not list:
        return None
    try:  # C speed; a value not an int in 0..255 raises (a bool is 0/1: no text)
        return bytes(value)
    except (TypeError, ValueError):
        return None


def _entry_ok(entry: Any, keys: frozenset[str]) -> bool:
    return (
        type(entry) is dict
        and entry.keys() <= keys
        and type(entry.get("token")) is str
        and type(entry.get("logprob")) in _NUMBER
    )


def entries_ok(entries: Any, text: str, finds: Finds) -> bool:
    """A token list (chat ``logprobs.content``/``refusal``, responses ``logprobs``) beside
    ``text``: True if it may go out as it is."""
    if entries is None or entries == []:
        return True  # carries no text
    if not isinstance(entries, list):
        return False
    tokens: list[str] = []
    raw = bytearray()
    alts: set[str] = set()
    for entry in entries:
        if not _entry_ok(entry, _ENTRY):
            return False
        token = entry["token"]
        got = _raw(entry.get("bytes"), token)
        if got is None:
            return False
        tokens.append(token)
        raw += got
        top = entry.get("top_logprobs")
        if top is None:
            continue
        if not isinstance(top, list):
            return False
        for alt in top:
            if not _entry_ok(alt, _ALT):
                return False
            alt_raw = _raw(alt.get("bytes"), alt["token"])
            if alt_raw is None:
                return False
            alts.add(alt["token"])
            if alt_raw != alt["token"].encode():
                alts.add(alt_raw.decode("utf-8", "replace"))
    if "".join(tokens) != text or bytes(raw) != text.encode():
        return False
    alts.discard("")
    # One analysis of all alternatives (one per line), not one per token: a finding in any
    # of them (or, rarely, across two lines) drops the logprobs, never lets one through.
    return not alts or not finds("\n".join(sorted(alts)))


def chat_ok(logprobs: Any, texts: Mapping[str, str], finds: Finds) -> bool:
    """A chat choice's ``logprobs`` object beside its ``content`` / ``refusal`` texts."""
    if logprobs is None:
        return True
    if not isinstance(logprobs, dict) or not logprobs.keys() <= _CHAT:
        return False
    return all(entries_ok(value, texts.get(key) or "", finds) for key, value in logprobs.items())


def hold_chat(held: dict[str, list[Any]], logprobs: Any) -> None:
    """Add a stream chunk's chat ``logprobs`` to those held for its choice; a shape not
    judged (not an object, a value not a list) is held as ``[None]``, which ``chat_ok``
    refuses: all of the choice's logprobs are dropped."""
    for key, entries in logprobs.items() if isinstance(logprobs, dict) else [("?", None)]:
        if isinstance(entries, list):
            held.setdefault(key, []).extend(entries)
        elif entries is not None or not isinstance(logprobs, dict):
            held.setdefault(key, []).append(None)


def holder_ok(holder: Any, value: Any, finds: Finds) -> bool:
    """Logprobs found by the field table (``value``, held in ``holder``): a chat choice's
    object beside its ``message`` / ``delta``, or a token list beside ``text`` / ``delta``."""
    if isinstance(value, dict):
        msg = holder.get("message") if isinstance(holder.get("message"), dict) else holder.get("delta")
        msg = msg if isinstance(msg, dict) else {}
        texts = {k: msg[k] for k in _CHAT if isinstance(msg.get(k), str)}
        return chat_ok(value, texts, finds)
    if isinstance(value, list):
        text = holder.get("text") if isinstance(holder.get("text"), str) else holder.get("delta")
        return entries_ok(value, text if isinstance(text, str) else "", finds)
    return False
