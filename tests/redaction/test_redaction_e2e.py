"""Through the real gateway with the openai SDK: the upstream only ever sees placeholders, the
caller gets its own values back (stream and non-stream, chat and responses), ``block`` is a
400, and no value reaches the logs or the audit log."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import httpx
import openai
import orjson
import pytest

from tests.harness import (
    AUDITOR_KEY,
    PASS_THROUGH,
    TEST_KEY,
    RunningGateway,
    gateway_settings,
    running_gateway,
)

EMAIL = "jane.e2e.redaction@example.org"
CARD = "4111 1111 1111 1111"
SSN = "219-09-9999"
PROMPT = f"Please email {EMAIL} about my card {CARD}"
VALUES = (EMAIL, CARD, "4111111111111111", SSN)


class _Keep(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(f"{record.name} {record.levelname} {record.getMessage()} {record.exc_text or ''}")


@pytest.fixture(scope="module")
def logs() -> Iterator[_Keep]:
    keep = _Keep()
    loggers = [logging.getLogger(), logging.getLogger("wardgate")]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(keep)
        lg.setLevel(logging.DEBUG)
    yield keep
    for lg, level in saved:
        lg.removeHandler(keep)
        lg.setLevel(level)


@pytest.fixture(scope="module")
def gw(fake_upstream, tmp_path_factory, logs) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("redaction-e2e")
    overrides = {
        **PASS_THROUGH,
        "redaction": {
            "enabled": True,
            "actions": {
                "EMAIL_ADDRESS": "restore",
                "CREDIT_CARD": "restore",
                "PHONE_NUMBER": "redact",
                "US_SSN": "block",
            },
        },
        "audit": {
            "enabled": True,
            "backend": "sqlite",
            "log_events": True,
            "log_path": str(root / "audit-events.jsonl"),
        },
        "server": {"log_level": "debug"},
    }
    with running_gateway(gateway_settings(root, fake_upstream.base_url, **overrides)) as running:
        yield running


@pytest.fixture
def client(gw, upstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)


def _sent(upstream) -> str:
    return upstream.requests[-1].body.decode()


def test_chat_prompt_reaches_upstream_redacted_and_the_answer_is_restored(client, upstream):
    resp = client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": PROMPT}])
    sent = _sent(upstream)
    assert EMAIL not in sent and "4111" not in sent
    assert "<EMAIL_ADDRESS_1>" in sent and "<CREDIT_CARD_1>" in sent
    assert resp.choices[0].message.content == f"Echo: {PROMPT}"


def test_chat_stream_is_restored_for_the_caller(client, upstream):
    stream = client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": PROMPT}], stream=True
    )
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert EMAIL not in _sent(upstream)
    assert text == f"Echo: {PROMPT}"


def test_responses_non_stream_and_stream_are_restored(client, upstream):
    resp = client.responses.create(model="gpt-test", input=PROMPT, instructions=f"Account owner: {EMAIL}")
    sent = upstream.requests[-1].json
    assert EMAIL not in orjson.dumps(sent).decode()
    assert sent["instructions"] == "Account owner: <EMAIL_ADDRESS_1>"
    assert resp.output_text == f"Echo: {PROMPT}"
    with client.responses.stream(model="gpt-test", input=PROMPT) as stream:
        deltas = "".join(e.delta for e in stream if e.type == "response.output_text.delta")
        final = stream.get_final_response()
    assert deltas == final.output_text == f"Echo: {PROMPT}"
    assert EMAIL not in _sent(upstream)


def test_a_tool_call_carries_the_restored_value_but_the_upstream_saw_a_placeholder(client, upstream):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "send_email",
                "description": "Send an email",
                "parameters": {
                    "type": "object",
                    "properties": {"to": {"type": "string"}},
                    "required": ["to"],
                },
            },
        }
    ]
    for stream in (False, True):
        kwargs = {
            "model": "gpt-test",
            "messages": [{"role": "user", "content": f"send_email to {EMAIL}"}],
            "tools": tools,
        }
        if stream:
            chunks = list(client.chat.completions.create(stream=True, **kwargs))
            args = "".join(
                tc.function.arguments or ""
                for c in chunks
                if c.choices
                for tc in c.choices[0].delta.tool_calls or []
            )
        else:
            args = (
                client.chat.completions.create(**kwargs).choices[0].message.tool_calls[0].function.arguments
            )
        assert orjson.loads(args) == {"to": EMAIL}
        assert EMAIL not in _sent(upstream)


def test_embeddings_input_is_redacted(client, upstream):
    client.embeddings.create(model="embed-test", input=[f"customer {EMAIL}", "plain text"])
    assert upstream.requests[-1].json["input"] == ["customer <EMAIL_ADDRESS_1>", "plain text"]


def test_block_returns_400_naming_the_type_and_nothing_is_forwarded(client, upstream):
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": f"my ssn is {SSN}"}]
        )
    err = info.value
    assert err.status_code == 400 and err.code == "sensitive_data_blocked"
    assert "US_SSN" in err.message and SSN not in str(err.body)
    assert upstream.requests == []


def test_nothing_sensitive_reaches_the_logs_or_the_audit_log(gw, client, logs):
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": PROMPT}])
    audit = httpx.get(
        f"{gw.url}/admin/audit", params={"limit": 1000}, headers={"authorization": f"Bearer {AUDITOR_KEY}"}
    )
    assert audit.status_code == 200, audit.text
    events = audit.json()["data"]
    assert any((e.get("redaction") or {}).get("entities", {}).get("EMAIL_ADDRESS") for e in events)
    stored = audit.text
    joined = "\n".join(logs.lines)
    assert logs.lines, "the gateway logged something during the test"
    lines = gw.ctx.settings.audit.log_path.read_text()
    assert '"kind":"call"' in lines  # audit.log_events lines, beside the logs
    joined += lines
    for value in VALUES:
        assert value not in stored, "a value reached the audit log"
        assert value not in joined, "a value reached the logs"
