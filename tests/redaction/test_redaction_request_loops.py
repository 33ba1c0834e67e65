"""``redact_in``'s per-text loops and the walk's skipped numbers, written out for a resent conversation (``analyze_many``'s
cache key, ``_apply_request``'s summary of one-value texts, ``replace_texts``' JSON test), give
exactly what the functions they inline give: the same cache entries as ``analyze``, the same
``pii`` summary as ``Summary.add`` slot by slot, the same JSON-aware replacement."""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from gateway.call import Endpoint
from gateway.redaction import locations
from gateway.redaction.cache import text_key
from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings
from gateway.redaction.locations import request_slots, response_slots
from gateway.redaction.redactor import Redactor, _to_source
from gateway.redaction.replace import _JSON_HEADS, as_json
from gateway.redaction.stage import RedactInStage
from gateway.redaction.state import Summary
from tests.redaction.conftest import chat_call

EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 2671"
CARD = "4111 1111 1111 1111"


@pytest.fixture
def redactor() -> Any:
    r = build(RedactionSettings(hash_salt="test-salt-0123456789"))
    yield r
    r.engine.close()


def messages() -> list[dict[str, Any]]:
    """One-value texts, several-value texts, the same text twice, clean texts, JSON (a tool
    result with a bare number, tool-call arguments), an array-shaped text and leading blanks."""
    one = f"write to {EMAIL} please"
    return [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": one},
        {"role": "assistant", "content": f"call {PHONE} or mail {EMAIL}, card {CARD}"},
        {"role": "user", "content": one},
        {"role": "user", "content": [{"type": "text", "text": f"  {PHONE}"}]},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "f", "arguments": orjson.dumps({"to": EMAIL}).decode()},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": '  {"phone": 4155552671, "n": 3}'},
        {"role": "tool", "tool_call_id": "c1", "content": '[4111111111111111, "x"]'},
        {"role": "user", "content": f"\n[not json] {EMAIL}"},
    ]


async def test_analyze_many_keys_the_cache_as_analyze_does(redactor: Redactor) -> None:
    engine = redactor.engine
    texts = [f"mail {EMAIL} #{i}" for i in range(3)] + ["lone \ud800 surrogate", "é ü 𝔘 " + PHONE, "x"]
    await engine.analyze_many(texts)
    assert all(engine.cache.get(text_key(t)) is not None for t in texts)
    hits = engine.cache.hits
    for t in texts:
        engine.analyze(t)
    assert engine.cache.hits - hits == len(texts), "every text analysed by analyze_many is a hit for analyze"


async def test_the_summary_is_summary_add_slot_by_slot(redactor: Redactor) -> None:
    body = messages()
    for _ in range(2):  # new texts, then the same texts as cache hits
        call = chat_call(copy.deepcopy(body))
        await RedactInStage(redactor).on_request(call)
        expected = Summary()
        walk = request_slots(
            chat_call(copy.deepcopy(body)).endpoint, {"model": "m", "messages": copy.deepcopy(body)}
        )
        for slot in walk.slots:
            view = slot.view()
            spans = (
                _to_source(view, redactor.engine.analyze(view.decoded))
                if view is not None
                else redactor.engine.analyze(slot.text)
            )
            if spans:
                expected.add(slot.path, spans)
        assert call.pii is not None
        assert call.pii["entities"] == dict(expected.entities)
        assert call.pii["locations"] == expected.locations
        assert expected.entities["EMAIL_ADDRESS"] == 5 and expected.entities["CREDIT_CARD"] == 2


async def test_the_json_test_written_out_replaces_as_as_json_decides(redactor: Redactor) -> None:
    """A JSON document with a bare number becomes a valid document with a string placeholder;
    a text that only starts like JSON is replaced as text; the written-out head test agrees
    with ``as_json`` on every slot."""
    body = messages()
    walk = request_slots(chat_call(body).endpoint, {"model": "m", "messages": copy.deepcopy(body)})
    for slot in walk.slots:
        text = slot.text
        spans = redactor.engine.analyze(text) if not slot.json else ()
        written_out = slot.json or (text.lstrip()[:1] in _JSON_HEADS and as_json(slot, text, spans))
        assert written_out == as_json(slot, text, spans), slot.path
    call = chat_call(copy.deepcopy(body))
    await RedactInStage(redactor).on_request(call)
    sent = call.body["messages"]
    tool_result = orjson.loads(sent[6]["content"])
    assert tool_result["phone"].startswith("<PHONE_NUMBER_") and tool_result["n"] == 3
    assert orjson.loads(sent[7]["content"])[0].startswith("<CREDIT_CARD_"), "an array document stays JSON"
    assert sent[8]["content"].startswith("\n[not json] <EMAIL_ADDRESS_")
    assert EMAIL not in orjson.dumps(call.body).decode()


_NAMES = (
    "index", "created", "usage", "prompt_tokens", "logprobs", "content", "max_tokens", "metadata",
    "tools", "parameters", "text", "url", "image_url", "arguments", "function", "choices", "message",
    "messages", "role", "input", "output", "seed", "n", "data", "b64_json", "top_logprobs", "phone",
)  # fmt: skip


def _value(rng: random.Random, depth: int) -> Any:
    kind = rng.random()
    if depth > 4 or kind < 0.45:
        return rng.choice(
            [
                None,
                True,
                False,
                0,
                7,
                3.5,
                -2,
                4155552671,
                4111111111111111,
                1e12,
                "x",
                f"mail {EMAIL}",
                "",
                "a:b",
            ]
        )
    if kind < 0.75:
        return {rng.choice(_NAMES): _value(rng, depth + 1) for _ in range(rng.randint(0, 5))}
    return [_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def _walked(walk: Any) -> Any:
    return (
        [
            (type(s).__name__, s.path, s.key, s.json, s.tool, s.url, s.label, getattr(s, "number", None))
            for s in walk.slots
        ],
        walk.unscanned,
        [(id(h), k, p) for h, k, p in walk.logprobs],
        walk.opaque,
        walk.unknown,
    )


@pytest.mark.parametrize("endpoint", list(Endpoint))
def test_numbers_skipped_where_found_walk_as_through_the_stack(
    endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``walk_body`` skips the numbers of an object's leading fields that need nothing; the
    walk (slots in order, unscanned, logprobs, opaque and unknown paths) equals the one that
    sends every number through the stack, on random bodies in both directions."""
    rng = random.Random(16)
    for _ in range(400):
        body = {rng.choice(_NAMES): _value(rng, 0) for _ in range(rng.randint(1, 6))}
        for walk in (request_slots, response_slots):
            fast = _walked(walk(endpoint, body))
            monkeypatch.setattr(locations, "_INLINE_NUMBERS", False)
            slow = _walked(walk(endpoint, body))
            monkeypatch.setattr(locations, "_INLINE_NUMBERS", True)
            assert fast == slow, body


def _chat_like(rng: random.Random) -> dict[str, Any]:
    """Messages of strings (the flat lists ``_flat_objects`` walks) mixed with the shapes it
    leaves to the stack: content parts, tool calls, a ``None`` content, a number, a bool."""
    shapes = [
        lambda: {"role": "user", "content": f"mail {EMAIL}"},
        lambda: {"role": "assistant", "content": "ok", "name": "bot", "refusal": None},
        lambda: {"role": "user", "content": [{"type": "text", "text": PHONE}, {"type": "text", "text": "x"}]},
        lambda: {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}],
        },
        lambda: {"role": "tool", "tool_call_id": "c", "content": "4155552671"},
        lambda: {"role": "user", "content": "hi", "weight": 4155552671},
        lambda: {"role": "user", "content": "hi", "flag": True, "unknown_field": "jane@example.com"},
        lambda: "a bare string",
        lambda: {"role": "user", "content": "x", "metadata": {"phone": "4155552671"}},
    ]
    flat_only = rng.random() < 0.5
    pick = shapes[:2] + shapes[4:5] if flat_only else shapes
    messages = [rng.choice(pick)() for _ in range(rng.randint(0, 8))]
    return {"model": "m", "messages": messages, "input": messages, "max_tokens": 5}


@pytest.mark.parametrize("endpoint", list(Endpoint))
def test_flat_lists_walk_as_through_the_stack(endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch) -> None:
    """``_flat_objects`` (a list of objects of strings: a chat's messages, text parts) gives the
    walk the stack gives (slots in order and paths, unscanned, logprobs, opaque and unknown
    paths), on chat-like and random bodies in both directions, and spends the same values."""
    rng = random.Random(23)
    for n in range(600):
        body = (
            _chat_like(rng)
            if n % 2
            else {rng.choice(_NAMES): _value(rng, 0) for _ in range(rng.randint(1, 6))}
        )
        for walk in (request_slots, response_slots):
            fast = _walked(walk(endpoint, body))
            monkeypatch.setattr(locations, "_INLINE_LISTS", False)
            slow = _walked(walk(endpoint, body))
            monkeypatch.setattr(locations, "_INLINE_LISTS", True)
            assert fast == slow, body
        limit = 12
        outcomes = []
        for inline in (True, False):
            monkeypatch.setattr(locations, "_INLINE_LISTS", inline)
            try:
                request_slots(endpoint, body, max_values=limit)
                outcomes.append("ok")
            except Exception as exc:  # content_too_complex past the bound
                outcomes.append(getattr(exc, "code", type(exc).__name__))
        monkeypatch.setattr(locations, "_INLINE_LISTS", True)
        assert outcomes[0] == outcomes[1], body
