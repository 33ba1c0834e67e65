"""A resent conversation (its texts analysis cache hits, replaced in one loop: ``replace.py``)
is redacted exactly as a full scan by a fresh engine redacts it: same body, same ``pii``
summary, same placeholders restored to the same values. Also with a message edited in the
middle of the history, after a scan under other actions (a policy's ``redact``) or other
settings, and for two callers sending the same text. The analysis cache holds no values."""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from gateway.call import Call
from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings
from gateway.redaction.redactor import Redactor
from gateway.redaction.stage import RedactInStage
from gateway.redaction.state import STATE
from tests.redaction.conftest import chat_call

EMAIL = "jane.doe@example.com"
OTHER = "sam.lee@example.org"
CARD = "4111 1111 1111 1111"
PHONE = "+1 415 555 2671"
KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"
VALUES = (EMAIL, OTHER, CARD, PHONE, KEY, "4155552671", "10.1.2.3")


def conversation() -> list[dict[str, Any]]:
    """Values repeated across messages (one placeholder each), a tool call's JSON arguments,
    a JSON tool result with a bare number (becomes a string placeholder), clean turns."""
    return [
        {"role": "system", "content": f"Support bot. Escalate to {OTHER}."},
        {"role": "user", "content": f"I am {EMAIL}, card {CARD}, call me on {PHONE}."},
        {"role": "assistant", "content": "Thanks, I will look the order up."},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": orjson.dumps({"email": EMAIL}).decode()},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": '{"phone": 4155552671, "host": "10.1.2.3"}'},
        {"role": "user", "content": f"Also my key {KEY} leaked, and write to {OTHER} and {EMAIL}."},
        {"role": "assistant", "content": "Noted. Anything else?"},
    ]


def settings(**extra: Any) -> RedactionSettings:
    return RedactionSettings(hash_salt="test-salt-0123456789", **extra)


async def redact(
    redactor: Redactor, messages: list[dict[str, Any]], policy: dict[str, Any] | None = None
) -> Call:
    call = chat_call(copy.deepcopy(messages))  # each request parses its own body
    await RedactInStage(redactor).on_request(call)
    if policy:  # what the policy stage does when its decision carries ``redact``
        call.policy_redact = policy
        await redactor.reapply(call)
    return call


def outcome(call: Call) -> tuple[str, Any, str]:
    """The body sent on, the summary, and the body with the placeholders restored."""
    body = orjson.dumps(call.body).decode()
    restored, _ = STATE.get(call).vault.restore(body)  # type: ignore[union-attr]
    return body, call.pii, restored


async def full_scan(
    messages: list[dict[str, Any]], policy: dict[str, Any] | None = None, **extra: Any
) -> Any:
    fresh = build(settings(**extra))  # an empty cache: every text analysed
    try:
        return outcome(await redact(fresh, messages, policy))
    finally:
        fresh.engine.close()


@pytest.fixture
def warm() -> Any:
    redactor = build(settings())
    yield redactor
    redactor.engine.close()


async def test_a_resent_conversation_is_redacted_as_a_full_scan(warm: Redactor) -> None:
    history = conversation()
    first = outcome(await redact(warm, history))
    hits = warm.engine.cache.hits
    turn = [*history, {"role": "user", "content": f"New: {EMAIL} and 4012 8888 8888 1881"}]
    resent = outcome(await redact(warm, turn))
    assert warm.engine.cache.hits - hits == 7, "the seven history texts came from the cache"
    assert resent == await full_scan(turn)
    assert first == await full_scan(history)
    body, pii, restored = resent
    assert not any(v in body for v in VALUES)
    assert '\\"phone\\": \\"<PHONE_NUMBER_' in body, "a bare number became a string placeholder"
    assert body.count("<EMAIL_ADDRESS_2>") == 4, "one placeholder per value across the messages"
    assert EMAIL in restored and OTHER in restored and CARD in restored
    assert pii["entities"]["EMAIL_ADDRESS"] == 6


async def test_a_message_edited_in_the_middle_of_the_history(warm: Redactor) -> None:
    history = conversation()
    await redact(warm, history)
    edited = copy.deepcopy(history)
    edited[2]["content"] = f"Thanks {OTHER}, forward it to {PHONE} and 212-736-5000."
    edited[5]["content"] = f"My key {KEY} leaked; {EMAIL}."
    turn = [*edited, {"role": "user", "content": f"{CARD} again"}]
    assert outcome(await redact(warm, turn)) == await full_scan(turn)


@pytest.mark.parametrize(
    "policy",
    [
        {"EMAIL_ADDRESS": "mask", "CREDIT_CARD": "hash"},
        {"EMAIL_ADDRESS": "allow"},
        {"*": "redact"},
        {"EMAIL_ADDRESS": {"prompt": "redact", "answer": "allow"}, "PHONE_NUMBER": "mask"},
    ],
)
async def test_a_history_scanned_under_other_actions(warm: Redactor, policy: dict[str, Any]) -> None:
    history = conversation()
    # Seen first under the policy's actions, then under the configured ones, and back.
    assert outcome(await redact(warm, history, policy)) == await full_scan(history, policy)
    turn = [*history, {"role": "user", "content": f"and {EMAIL}"}]
    assert outcome(await redact(warm, turn)) == await full_scan(turn)
    assert outcome(await redact(warm, turn, policy)) == await full_scan(turn, policy)


async def test_a_history_scanned_under_other_settings() -> None:
    """Settings are the engine's (a change restarts it, with a new cache): each engine's warm
    result is its own full scan's."""
    history = conversation()
    turn = [*history, {"role": "user", "content": f"and {PHONE}"}]
    for extra in (
        {"actions": {"EMAIL_ADDRESS": "mask", "PHONE_NUMBER": "redact", "CREDIT_CARD": "hash"}},
        {"restore": False},
        {"mask_keep_last": {"CREDIT_CARD": 4}, "actions": {"CREDIT_CARD": "mask"}},
    ):
        redactor = build(settings(**extra))
        try:
            await redact(redactor, history)
            assert outcome(await redact(redactor, turn)) == await full_scan(turn, **extra)
        finally:
            redactor.engine.close()


async def test_two_callers_with_the_same_text_each_get_their_own_vault(warm: Redactor) -> None:
    """The cache is keyed by the text alone and holds offsets and types: a second caller
    sending the same text reuses the analysis, never the first caller's placeholders or
    values (the vault lives on each call)."""
    shared = f"Contact {EMAIL} or {OTHER}."
    mine = await redact(
        warm, [{"role": "user", "content": f"{OTHER} first"}, {"role": "user", "content": shared}]
    )
    theirs = await redact(warm, [{"role": "user", "content": shared}])
    assert theirs.body["messages"][0]["content"] == "Contact <EMAIL_ADDRESS_1> or <EMAIL_ADDRESS_2>."
    assert mine.body["messages"][1]["content"] == "Contact <EMAIL_ADDRESS_2> or <EMAIL_ADDRESS_1>."
    assert outcome(theirs) == await full_scan([{"role": "user", "content": shared}])
    mine_vault = STATE.get(mine).vault  # type: ignore[union-attr]
    assert mine_vault.restore("<EMAIL_ADDRESS_1>")[0] == OTHER
    assert STATE.get(theirs).vault.restore("<EMAIL_ADDRESS_1>")[0] == EMAIL  # type: ignore[union-attr]


async def test_the_analysis_cache_holds_no_values(warm: Redactor) -> None:
    await redact(warm, conversation())
    cache = warm.engine.cache
    assert len(cache) >= 6
    dumped = repr(list(cache._data.items()))  # keys are digests, values offsets and types
    for value in (*VALUES, "jane", "415 555"):
        assert value not in dumped


async def test_the_one_loop_replacement_equals_the_generic_path(redactor: Redactor, corpus: Any) -> None:
    """Every corpus line as a message of one request (values repeat across lines, so later
    lines reuse earlier placeholders), plus a text of 600 values (over one chunk: generic),
    replaced by ``redact_in`` and, text by text in the same order, by the generic
    ``apply_steps`` into a vault of its own: same texts, same values restored."""
    texts = [row["text"] for row in corpus]
    texts.append(" ".join(f"u{i}@example.com" for i in range(600)))
    call = await redact(redactor, [{"role": "user", "content": t} for t in texts])
    generic = redactor.new_state(chat_call([]))
    for i, text in enumerate(texts):
        spans = redactor.analyze_or_refuse(text)
        expected = redactor.apply(text, spans, generic, json=False, output=False) if spans else text
        assert call.body["messages"][i]["content"] == expected
    body = orjson.dumps(call.body).decode()
    assert STATE.get(call).vault.restore(body) == generic.vault.restore(body)  # type: ignore[union-attr]
