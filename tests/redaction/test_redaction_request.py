"""``redact_in`` fed with real ``Call``s: where it looks, what it writes, what it reports."""

from __future__ import annotations

import copy
from dataclasses import asdict

import orjson
import pytest

from gateway.call import Call, Endpoint
from gateway.errors import SensitiveDataBlocked
from gateway.redaction.component import build
from gateway.redaction.config import Action, RedactionSettings
from gateway.redaction.redactor import Redactor
from gateway.redaction.stage import RedactInStage, RedactOutStage
from gateway.redaction.state import STATE
from tests.redaction.conftest import chat_call

EMAIL = "jane.doe@example.com"
CARD = "4111 1111 1111 1111"
KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"


def _dump(call: Call) -> str:
    return orjson.dumps(call.body).decode()


async def test_chat_messages_tool_calls_and_tool_results_are_all_redacted(stages) -> None:
    redact_in, _ = stages
    call = chat_call(
        [
            {"role": "system", "content": f"Support bot. Escalate to {EMAIL}."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"My card is {CARD} and my mail {EMAIL}"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
                ],
            },
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {
                            "name": "lookup",
                            "arguments": orjson.dumps({"email": EMAIL, "key": KEY}).decode(),
                        },
                    },
                ],
            },
            {
                "role": "tool",
                "tool_call_id": "call_1",
                "content": f'{{"owner": "{EMAIL}", "phone": "+1 415 555 2671"}}',
            },
        ]
    )
    await redact_in.on_request(call)
    body = _dump(call)
    assert EMAIL not in body and "4111" not in body and KEY not in body and "555 2671" not in body
    # the same value is the same placeholder everywhere in the request
    assert body.count("<EMAIL_ADDRESS_1>") == 4 and "<EMAIL_ADDRESS_2>" not in body
    args = orjson.loads(call.body["messages"][2]["tool_calls"][0]["function"]["arguments"])
    assert args == {"email": "<EMAIL_ADDRESS_1>", "key": "<OPENAI_API_KEY_1>"}
    image = call.body["messages"][1]["content"][1]
    assert image == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
    pii = call.pii
    assert pii["entities"] == {"EMAIL_ADDRESS": 4, "CREDIT_CARD": 1, "OPENAI_API_KEY": 1, "PHONE_NUMBER": 1}
    assert pii["unscanned"] == 1
    paths = {(loc["path"], loc["type"]) for loc in pii["locations"]}
    assert ("messages[1].content[0].text", "CREDIT_CARD") in paths
    assert ("messages[2].tool_calls[0].function.arguments", "OPENAI_API_KEY") in paths
    assert ("messages[3].content", "PHONE_NUMBER") in paths
    summary = orjson.dumps([pii, [asdict(d) for d in call.decisions if d.stage == "redact_in"]]).decode()
    assert EMAIL not in summary and "4111" not in summary and KEY not in summary, "never values"
    assert call.decisions[-1].outcome == "allow"


async def test_responses_input_items_and_instructions_are_redacted(stages) -> None:
    redact_in, _ = stages
    body = {
        "model": "m",
        "instructions": f"Reply to {EMAIL} only.",
        "input": [
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": f"card {CARD}"},
                    {"type": "input_image", "image_url": "https://x.example/a.png"},
                ],
            },
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "f",
                "arguments": orjson.dumps({"to": EMAIL}).decode(),
            },
            {"type": "function_call_output", "call_id": "c1", "output": f"sent to {EMAIL}"},
            {
                "type": "reasoning",
                "summary": [{"type": "summary_text", "text": f"user is {EMAIL}"}],
                "encrypted_content": "gAAAAB...",
            },
            {"type": "computer_call", "call_id": "c2", "action": {"type": "click"}},
        ],
    }
    call = Call("r", Endpoint.RESPONSES, body, {})
    await redact_in.on_request(call)
    text = _dump(call)
    assert EMAIL not in text and "4111" not in text
    assert call.body["instructions"] == "Reply to <EMAIL_ADDRESS_1> only."
    # the encrypted reasoning; the image URL is scanned (query and path), the computer call's
    # action is free-form and scanned too (fields.py)
    assert call.pii["unscanned"] == 1
    assert {loc["path"] for loc in call.pii["locations"]} == {
        "instructions",
        "input[0].content[0].text",
        "input[1].arguments",
        "input[2].output",
        "input[3].summary[0].text",
    }


async def test_responses_string_input_and_embeddings_inputs_are_redacted(stages) -> None:
    redact_in, _ = stages
    call = Call("r", Endpoint.RESPONSES, {"model": "m", "input": f"mail {EMAIL}"}, {})
    await redact_in.on_request(call)
    assert call.body["input"] == "mail <EMAIL_ADDRESS_1>"
    emb = Call("e", Endpoint.EMBEDDINGS, {"model": "e", "input": [f"a {EMAIL}", "plain", [1, 2, 3]]}, {})
    await redact_in.on_request(emb)
    assert emb.body["input"] == ["a <EMAIL_ADDRESS_1>", "plain", [1, 2, 3]]
    assert emb.pii["unscanned"] == 1
    single = Call("e", Endpoint.EMBEDDINGS, {"model": "e", "input": f"call +44 20 7946 0958 or {EMAIL}"}, {})
    await redact_in.on_request(single)
    assert single.body["input"] == "call <PHONE_NUMBER_1> or <EMAIL_ADDRESS_1>"


async def test_block_refuses_with_400_naming_types_never_values() -> None:
    settings = RedactionSettings(actions={**RedactionSettings().actions, "CREDIT_CARD": Action.BLOCK})
    redactor = build(settings)
    call = chat_call([{"role": "user", "content": f"pay with {CARD}, mail {EMAIL}"}])
    with pytest.raises(SensitiveDataBlocked) as info:
        await RedactInStage(redactor).on_request(call)
    err = info.value
    assert err.status == 400 and err.code == "sensitive_data_blocked"
    assert err.extra["entity_types"] == ["CREDIT_CARD"]
    rendered = err.to_json().decode()
    assert "CREDIT_CARD" in rendered and "4111" not in rendered and EMAIL not in rendered
    assert call.pii["blocked"] == ["CREDIT_CARD"]
    assert call.decisions[-1].outcome == "deny" and call.decisions[-1].stage == "redact_in"
    redactor.engine.close()


async def test_policy_redact_overrides_config_actions(redactor: Redactor, stages) -> None:
    redact_in, _ = stages
    call = chat_call([{"role": "user", "content": f"mail {EMAIL}, card {CARD}"}])
    call.policy_redact = {"EMAIL_ADDRESS": "mask", "CREDIT_CARD": "hash"}
    await redact_in.on_request(call)
    content = call.body["messages"][0]["content"]
    assert content.startswith("mail " + "*" * len(EMAIL) + ", card <CREDIT_CARD:")
    blocked = chat_call([{"role": "user", "content": f"mail {EMAIL}"}])
    blocked.policy_redact = {"*": "block"}
    with pytest.raises(SensitiveDataBlocked):
        await redact_in.on_request(blocked)


async def test_reapply_redoes_the_request_with_the_policy_actions(redactor: Redactor, stages) -> None:
    redact_in, _ = stages
    call = chat_call([{"role": "user", "content": f"mail {EMAIL}"}])
    await redact_in.on_request(call)
    assert call.body["messages"][0]["content"] == "mail <EMAIL_ADDRESS_1>"
    call.policy_redact = {"EMAIL_ADDRESS": "allow"}
    pii = await redactor.reapply(call)
    assert call.body["messages"][0]["content"] == f"mail {EMAIL}"
    assert pii["entities"] == {"EMAIL_ADDRESS": 1} and pii["actions"] == {"EMAIL_ADDRESS": "allow"}


async def test_hash_is_deterministic_with_the_configured_salt_and_masks_keep_last_four() -> None:
    def settings(salt: str) -> RedactionSettings:
        return RedactionSettings(
            hash_salt=salt,
            actions={**RedactionSettings().actions, "EMAIL_ADDRESS": Action.HASH, "CREDIT_CARD": Action.MASK},
        )

    outs = []
    for salt in ("salt-one-0123456789", "salt-one-0123456789", "salt-two-0123456789"):
        redactor = build(settings(salt))
        call = chat_call([{"role": "user", "content": f"{EMAIL} {CARD}"}])
        await RedactInStage(redactor).on_request(call)
        outs.append(call.body["messages"][0]["content"])
        redactor.engine.close()
    assert outs[0] == outs[1] != outs[2]
    assert outs[0].endswith(" " + "*" * 15 + "1111") and outs[0].startswith("<EMAIL_ADDRESS:")


async def test_a_seen_conversation_is_not_analysed_again(redactor: Redactor, stages) -> None:
    redact_in, _ = stages
    history = [
        {"role": "user" if i % 2 else "assistant", "content": f"turn {i}: call +1 415 555 26{i:02d} later"}
        for i in range(12)
    ]
    await redact_in.on_request(chat_call(copy.deepcopy(history)))  # each request parses its own body
    engine = redactor.engine
    calls_before, hits_before = engine.presidio_calls, engine.cache.hits
    await redact_in.on_request(
        chat_call([*copy.deepcopy(history), {"role": "user", "content": f"and {EMAIL}"}])
    )
    assert engine.cache.hits - hits_before == 12
    assert engine.presidio_calls - calls_before == 1, "only the new message reached Presidio"


async def test_the_answer_side_restores_what_the_request_side_redacted(stages) -> None:
    redact_in, redact_out = stages
    call = chat_call([{"role": "user", "content": f"I am {EMAIL}"}])
    await redact_in.on_request(call)
    assert isinstance(redact_out, RedactOutStage)
    assert call.vault.restorable == 1
    assert EMAIL not in repr(STATE.get(call)), "the vault never shows values"
