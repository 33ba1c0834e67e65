"""Rewrite the answer's SSE events: chat-completion chunks and responses-API events.

Every text delta goes through its channel (``stream.Channel``) and is replaced by what the
channel releases; the event keeps its id, index and framing (``SSEEvent.set_json``), and a
delta that released nothing stays as an empty string, so chunk and tool-call indexes stay
valid. Content-only chat chunks that arrive in one upstream read go through their channel as
one text and leave as one chunk (``chat_splice``): the same text, in fewer events. What is
still held is flushed into the choice's ``finish_reason`` chunk (chat), into a synthetic delta
just before the ``*.done`` event (responses API, whose ``*.done`` events and
``response.completed`` then carry exactly the text the client saw), or, if the upstream ends
without either, before ``[DONE]`` / at the end.

Modules: ``chat_events`` (chat chunks), ``chat_splice`` (the content-only chunk fast path),
``responses_events`` (responses-API events); ``rewrite_body`` here does a whole answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateway.call import Endpoint
from gateway.errors import UpstreamError
from gateway.redaction.fields import Treat
from gateway.redaction.locations import Walk, drop_logprobs, response_slots
from gateway.redaction.stream import Channel

#: (json, path, tool) -> a new stream channel of the answer.
NewChannel = Callable[[bool, str, bool], Channel]
#: (text, json, path, tool[, url]) -> the text redacted and restored.
WholeText = Callable[..., str]


def index_of(obj: dict[str, Any], key: str, default: Any = 0) -> Any:
    """A choice's, tool call's or output item's index in a stream event: it keys the stream
    channels, so a list or an object there (a broken or hostile upstream) is refused as a
    malformed stream (502) instead of failing the stream with a 500."""
    value = obj.get(key, default)
    if isinstance(value, (list, dict)):
        raise UpstreamError(f"The model provider sent a stream event whose `{key}` is not a number.")
    return value


def rewrite_body(endpoint: Endpoint, body: Any, whole_text: WholeText, unknown: Treat = Treat.SCAN) -> bool:
    """A complete (non-stream) answer: each text through ``whole_text``; True if changed.
    Logprobs beside a text that changed are dropped (their tokens spell the raw text), and so
    are any ``logprob_check`` cannot vouch for (tokens spelling other text, an alternative with
    a finding)."""
    walk: Walk = response_slots(endpoint, body, unknown)
    changed: list[str] = []
    for slot in walk.slots:
        text = slot.text
        if not text:
            continue
        new = whole_text(text, slot.json, slot.path, slot.tool, slot.url)
        if new != text:
            slot.set(new)
            changed.append(slot.path)
    dropped = bool(walk.logprobs) and drop_logprobs(
        walk, changed, lambda t: whole_text(t, False, "logprobs", False) != t
    )
    return bool(changed) or dropped
