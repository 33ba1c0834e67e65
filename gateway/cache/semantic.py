"""Semantic mode: what is compared, and the interface the stage consults.

A request policy may decide ``cache: {mode: semantic, threshold}``: a hit on a *similar*
question, not only an identical one. What is compared is split in two (``query``):

- the **last user turn**, normalised (NFKC, whitespace, case), embedded (``embedder``);
- everything else, **hashed** (the *context*): the scope, the endpoint, the routed model,
  every keyed field (``key._NOT_KEYED`` aside) with the last turn's text taken out, the
  earlier messages, and the turn's **literals**: its numbers and placeholders, in order.

A hit needs an identical context hash and a cosine similarity at least the threshold. The
literals are in the hash because an embedding hardly tells "top 5" from "top 10", or
``<EMAIL_ADDRESS_1>`` from ``<EMAIL_ADDRESS_2>``: those change the answer, so they must be
equal. And a candidate whose turn has the same words in another order is refused ("convert
USD to EUR" / "convert EUR to USD" score 0.99): a reordering is more often a swapped role
than a paraphrase.

Only a call whose last message is a user turn of plain text (chat: ``messages[-1]`` with
role ``user``, content a string or text parts; responses: ``input`` a string or a last
``user`` message of text) can be looked up or indexed semantically; any other call is
served exact. Only answers stored by calls in semantic mode are indexed.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from gateway.cache.embedder import normalise
from gateway.cache.key import _NOT_KEYED, CacheKey
from gateway.call import Call, Endpoint

#: Numbers (``5``, ``1,042.50``) and redaction placeholders (``<EMAIL_ADDRESS_1>``,
#: ``<SECRET:0123456789abcdef>``), matched in the normalised (lower-case) turn.
_LITERAL = re.compile(r"<[a-z][a-z0-9_]*(?:_\d+|:[0-9a-f]{16})>|\d+(?:[.,]\d+)*")
_WORD = re.compile(r"\w+")
#: Longer turns are not embedded (the model reads 128 tokens at most; a cut would make two
#: long turns with one beginning look alike): checked in characters first, cheaply.
MAX_TURN_CHARS = 2000


@dataclass(frozen=True, slots=True)
class Query:
    """What a semantic lookup compares: the turn (embedded) and the context (hashed)."""

    text: str
    context: str
    #: Hashes of the turn's words in order and sorted (the word-order guard: punctuation aside).
    text_hash: str
    bag_hash: str


@dataclass(frozen=True, slots=True)
class Near:
    key: CacheKey
    similarity: float


class SemanticIndex(Protocol):
    def ready(self) -> bool:
        """The model is loaded (until then a semantic call is served as exact)."""
        ...

    async def nearest(self, call: Call, exact: CacheKey, threshold: float) -> Near | None:
        """The key of a stored entry whose last user turn is at least ``threshold`` similar
        to ``call``'s, with the same scope, model and context hash; None when there is none."""
        ...

    async def added(self, call: Call, key: CacheKey, ttl_s: float) -> None:
        """``call``'s answer was stored under ``key``: index it (and announce it to replicas)."""
        ...

    async def purged(self, scope: str | None, model: str | None) -> None:
        """Entries of ``scope`` / ``model`` were purged: forget their vectors (everywhere)."""
        ...


def _h(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def _text(content: Any, kinds: frozenset[str]) -> str | None:
    if isinstance(content, str):
        return content
    if not isinstance(content, list) or not content:
        return None
    parts = []
    for part in content:
        if (
            not isinstance(part, dict)
            or part.get("type") not in kinds
            or not isinstance(part.get("text"), str)
        ):
            return None  # an image, a file, audio: not plain text
        parts.append(part["text"])
    return "\n".join(parts)


_CHAT_TEXT = frozenset({"text"})
_RESPONSES_TEXT = frozenset({"input_text"})


def _split(call: Call, keyed: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The last user turn's text, and the keyed body with that text taken out."""
    if call.endpoint is Endpoint.CHAT:
        messages = keyed.get("messages")
        if not isinstance(messages, list) or not messages or not isinstance(messages[-1], dict):
            return None
        last = messages[-1]
        if last.get("role") != "user":
            return None
        text = _text(last.get("content"), _CHAT_TEXT)
        rest = {k: v for k, v in last.items() if k != "content"}
        return (text, {**keyed, "messages": [*messages[:-1], rest]}) if text is not None else None
    if call.endpoint is Endpoint.RESPONSES:
        inp = keyed.get("input")
        if isinstance(inp, str):
            return inp, {**keyed, "input": None}
        if not isinstance(inp, list) or not inp or not isinstance(inp[-1], dict):
            return None
        last = inp[-1]
        if last.get("role") != "user" or last.get("type", "message") != "message":
            return None
        text = _text(last.get("content"), _RESPONSES_TEXT)
        rest = {k: v for k, v in last.items() if k != "content"}
        return (text, {**keyed, "input": [*inp[:-1], rest]}) if text is not None else None
    return None


def query(call: Call, key: CacheKey) -> Query | None:
    """What ``call`` compares semantically within ``key``'s scope and model; None: exact only."""
    keyed = {k: v for k, v in call.body.items() if k not in _NOT_KEYED}
    split = _split(call, keyed)
    if split is None or len(split[0]) > MAX_TURN_CHARS:
        return None
    raw, rest = split
    text = normalise(raw)
    if not text:
        return None
    literals = _LITERAL.findall(text)
    try:
        context = orjson.dumps(
            [call.endpoint.value, key.scope, key.model, rest, literals], option=orjson.OPT_SORT_KEYS
        )
    except (TypeError, orjson.JSONEncodeError):
        return None
    words = _WORD.findall(text)
    return Query(text, _h(context), _h(" ".join(words).encode()), _h(" ".join(sorted(words)).encode()))
