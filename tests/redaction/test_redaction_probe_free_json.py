"""Free-form JSON of a request (``metadata``, tool parameter schemas, responses ``arguments``
given as an object, a provider field no rule knows) as a careless operator fills it.

On the chat path, tool-call arguments are one JSON text, so ``"phone": 4155552671`` is read
with its label. The same value in ``metadata`` or a schema was read alone: a labelled phone
number, SSN or password passed, and a card written as a JSON number (a schema's ``default``,
``enum``, ``examples``; ``chat_template_kwargs``, which vLLM renders into the prompt) was
never scanned. Now each value is read after its member name, and an integer in such JSON is
scanned as its digits (a value found becomes its placeholder string). Through the real
gateway: the upstream never sees one; ordinary ids and numbers pass untouched."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import openai
import orjson
import pytest

from gateway.call import Call, Endpoint
from gateway.redaction.redactor import Redactor
from tests.harness import PASS_THROUGH, TEST_KEY, RunningGateway, gateway_settings, running_gateway

CARD = 4111111111111111
PHONE = "4155552671"
SSN = "123456789"
PASSWORD = "Tr0ub4dor3xyz"
RAW = (str(CARD), PHONE, SSN, PASSWORD)


@pytest.fixture(scope="module")
def gw(fake_upstream, tmp_path_factory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("redaction-free-json")
    overrides = {**PASS_THROUGH, "redaction": {"enabled": True}}
    with running_gateway(gateway_settings(root, fake_upstream.base_url, **overrides)) as running:
        yield running


def _client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)


def _leaks(sent: Any) -> list[str]:
    text = orjson.dumps(sent).decode()
    return [v for v in RAW if v in text]


def test_labelled_values_and_numbers_in_free_json_do_not_reach_the_upstream(gw, upstream) -> None:
    schema = {
        "type": "object",
        "properties": {"card": {"type": "integer", "default": CARD, "enum": [CARD], "examples": [CARD]}},
    }
    _client(gw).chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        metadata={"phone": PHONE, "ssn": SSN, "password": PASSWORD, "order_id": "5550001234"},
        tools=[{"type": "function", "function": {"name": "pay", "parameters": schema}}],
        seed=20251207,
        max_tokens=50,
        extra_body={"chat_template_kwargs": {"card": CARD, "contact": {"mobile": PHONE}}},
    )
    sent = orjson.loads(upstream.requests[-1].body)
    assert _leaks(sent) == [], sent
    assert sent["metadata"]["phone"].startswith("<PHONE_NUMBER_")
    assert sent["chat_template_kwargs"]["card"].startswith("<CREDIT_CARD_")
    # look-alikes untouched: an id is not a phone number, request numbers stay numbers
    assert sent["metadata"]["order_id"] == "5550001234"
    assert sent["seed"] == 20251207 and sent["max_tokens"] == 50


def test_responses_arguments_given_as_an_object_are_read_with_their_labels(gw, upstream) -> None:
    arguments: Any = {"card": CARD, "password": PASSWORD, "amount": 25}  # an object, not JSON text
    _client(gw).responses.create(
        model="gpt-test",
        input=[
            {"role": "user", "content": "pay"},
            {"type": "function_call", "call_id": "c1", "name": "pay", "arguments": arguments},
            {"type": "function_call_output", "call_id": "c1", "output": "ok"},
        ],
    )
    sent = orjson.loads(upstream.requests[-1].body)
    assert _leaks(sent) == [], sent
    assert sent["input"][1]["arguments"]["amount"] == 25


def test_a_policy_rerun_puts_a_number_back_as_a_number(redactor: Redactor) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "metadata": {"card": CARD}}
    call = Call("probe", Endpoint.CHAT, body, {})
    asyncio.run(redactor.redact_request(call))
    assert body["metadata"]["card"] == "<CREDIT_CARD_1>"
    call.policy_redact = {"CREDIT_CARD": "allow"}
    asyncio.run(redactor.reapply(call))
    assert body["metadata"]["card"] == CARD  # the original number, not its digits as a string
