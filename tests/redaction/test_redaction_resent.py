"""``resent.replace_seen``: the leading texts of a request that are cache hits are summarised and
replaced in one pass, and the request comes out exactly as through the general path (the same
body, ``pii`` summary, placeholders in reading order, values to restore); the first text that is
not a plain hit, and every text after it, go the general way; ``block``, the work budget and
the other actions are honoured as before."""

from __future__ import annotations

import copy
import random
from typing import Any

import orjson
import pytest

from gateway.errors import GatewayError, SensitiveDataBlocked
from gateway.redaction import redactor as redactor_mod
from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings
from gateway.redaction.redactor import Redactor
from gateway.redaction.stage import RedactInStage
from gateway.redaction.state import STATE
from tests.redaction.conftest import chat_call

EMAIL = "jane.doe@example.com"
PHONE = "+1 415 555 2671"
CARD = "4111 1111 1111 1111"


def _redactor(**settings: Any) -> Redactor:
    return build(RedactionSettings(hash_salt="test-salt-0123456789", **settings))


@pytest.fixture
def redactor() -> Any:
    r = _redactor()
    yield r
    r.engine.close()


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """How many texts each request's one pass did."""
    done: list[int] = []
    real = redactor_mod.replace_seen

    async def counted(*args: Any) -> int:
        n = await real(*args)
        done.append(n)
        return n

    monkeypatch.setattr(redactor_mod, "replace_seen", counted)
    return done


def conversation(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """Clean texts, one-value and several-value texts, the same text twice, values repeated
    across texts (one placeholder each), a JSON document with a bare number."""
    people = [f"user{i}@example.com" for i in range(4)]
    out: list[dict[str, Any]] = [{"role": "system", "content": "You are terse."}]
    for i in range(n):
        kind = rng.random()
        if kind < 0.25:
            text = f"thanks, noted #{i}"
        elif kind < 0.55:
            text = f"mail {rng.choice(people)} about #{i}"
        elif kind < 0.8:
            text = f"call {PHONE} or mail {rng.choice(people)}, card {CARD} (#{i})"
        elif kind < 0.9:
            text = out[-1]["content"] if isinstance(out[-1]["content"], str) else "again"
        else:
            text = orjson.dumps({"phone": 4155552671, "n": i}).decode()
        out.append({"role": "user" if i % 2 else "assistant", "content": text})
    return out


async def _redact(redactor: Redactor, messages: list[dict[str, Any]]) -> tuple[Any, Any, Any]:
    call = chat_call(copy.deepcopy(messages))
    await RedactInStage(redactor).on_request(call)
    state = STATE.get(call)
    assert state is not None
    # (a JSON document's number placeholder goes back as the number: restored as JSON)
    restored = [state.vault.restore(s.text, json=o.startswith("{"))[0] for s, o in state.originals]
    return call.body, call.pii, (restored, [original for _, original in state.originals])


@pytest.mark.parametrize("seed", range(6))
async def test_a_resent_conversation_comes_out_as_through_the_general_path(
    redactor: Redactor, passes: list[int], seed: int
) -> None:
    rng = random.Random(seed)
    messages = conversation(rng, 30)
    first = await _redact(redactor, messages)  # every text new: the general path
    again = await _redact(redactor, messages)  # every text a hit
    assert again == first
    restored, originals = again[2]
    assert restored == originals, "each replaced text restores to what the caller sent"
    json_at = next(
        (i for i, m in enumerate(messages) if m["content"].startswith("{") and "4155552671" in m["content"]),
        len(messages),
    )
    # The second request's one pass went as far as the first JSON document with a bare number.
    assert passes[1] == json_at


async def test_a_new_text_ends_the_pass_and_numbering_stays_in_reading_order(
    redactor: Redactor, passes: list[int]
) -> None:
    seen = [
        {"role": "user", "content": f"mail {EMAIL}"},
        {"role": "assistant", "content": f"card {CARD}"},
    ]
    await _redact(redactor, seen)
    new = {"role": "user", "content": "mail bob@example.com and call +1 212 736 5000"}
    messages = [*seen[:1], new, *seen[1:], {"role": "user", "content": f"again {EMAIL}"}]
    body, pii, _ = await _redact(redactor, messages)
    assert passes[-1] == 1
    assert [m["content"] for m in body["messages"]] == [
        "mail <EMAIL_ADDRESS_1>",
        "mail <EMAIL_ADDRESS_2> and call <PHONE_NUMBER_1>",
        "card <CREDIT_CARD_1>",
        "again <EMAIL_ADDRESS_1>",
    ]
    cold = _redactor()  # every text new: the general path
    try:
        assert (await _redact(cold, messages))[:2] == (body, pii)
    finally:
        cold.engine.close()


@pytest.mark.parametrize("action", ["allow", "mask", "hash", "block"])
async def test_a_type_that_is_not_a_placeholder_goes_the_general_path(action: str, passes: list[int]) -> None:
    r = _redactor(actions={"EMAIL_ADDRESS": action, "PHONE_NUMBER": "restore", "CREDIT_CARD": "redact"})
    try:
        messages = [
            {"role": "user", "content": f"call {PHONE}"},
            {"role": "assistant", "content": f"mail {EMAIL}, card {CARD}"},
            {"role": "user", "content": f"call {PHONE} again"},
        ]
        outcomes = []
        for _ in range(2):
            try:
                outcomes.append(await _redact(r, messages))
            except SensitiveDataBlocked as exc:
                outcomes.append(exc.extra["entity_types"])
        assert outcomes[1] == outcomes[0]
        assert passes[1] == 1, "the text with the e-mail address ended the pass"
        if action == "block":
            assert outcomes[1] == ["EMAIL_ADDRESS"]
    finally:
        r.engine.close()


async def test_cached_values_are_charged_to_the_request_budget(passes: list[int]) -> None:
    """Resent values count at their share (one candidate per 8): resent texts whose values are
    over ``max_candidates`` at that share are refused, though each alone was analysed."""
    r = _redactor(max_candidates=150)
    try:
        letters = "abcdefghijklmnopqrstuvwxyz"
        texts = [
            " ".join(f"{letters[t]}{letters[i % 26]}{letters[i // 26]}@example.com" for i in range(100))
            for t in range(13)
        ]
        for text in texts:  # ~100 candidates each: under 150
            await _redact(r, [{"role": "user", "content": text}])
        _, pii, _ = await _redact(r, [{"role": "user", "content": t} for t in texts[:12]])
        assert passes[-1] == 12 and pii["entities"] == {"EMAIL_ADDRESS": 1200}  # 1,200 / 8 = 150
        with pytest.raises(GatewayError) as over:  # 1,300 / 8 > 150
            await _redact(r, [{"role": "user", "content": t} for t in texts])
        assert over.value.code == "content_too_complex"
    finally:
        r.engine.close()
