"""A hostile agent and a careless user against redaction: the paths beside the built ones.

Each test is one attempt that got through before its fix, driven through the real gateway
with the ``openai`` SDK against the recording fake upstream: what the upstream recorded (a
request) or what the SDK read (an answer) must hold no raw value.

- other spellings of a label: a password after ``api_key:``, ``token=``, ``client_secret``,
  ``secret``, ``passcode``, in a sentence ("my password is …"), a table cell or after a tab,
  or after the word in another language (``Passwort:``, ``пароль:``, ``密码：``) passed, as did every label
  spelled with a Cyrillic or Greek letter drawn like a Latin one (``pаssword:``, ``рhone:``,
  ``ѕѕn:``) and a key or address with one inside (``АKIA…``);
- the headers the gateway forwards (``tracestate``, ``openai-beta``, a ``traceparent`` that is
  not one) reached the provider as written;
- a number as a float: ``{"card": 4111111111111111.0}`` in metadata was sent on as its digits;
- a responses stream's ``response.failed`` / ``response.completed`` carry a whole response:
  only its output items were read, so its ``error.message`` and the ``output_text`` some
  servers add reached the client raw;
"""

from __future__ import annotations

import gzip
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from tests.harness import PASS_THROUGH, TEST_KEY, RunningGateway, gateway_settings, running_gateway

NEW = "mallory.roe@example.org"
KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"


@pytest.fixture(scope="module")
def gw(fake_upstream, tmp_path_factory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("redaction-hostile")
    overrides = {**PASS_THROUGH, "redaction": {"enabled": True}}
    with running_gateway(gateway_settings(root, fake_upstream.base_url, **overrides)) as running:
        yield running


@pytest.fixture
def client(gw, upstream) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)


def _sent(upstream: Any) -> str:
    return upstream.requests[-1].body.decode()


def _response(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": "resp_h",
        "object": "response",
        "created_at": 1,
        "model": "gpt-test",
        "status": status,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "output": [],
        **extra,
    }


# -- requests -------------------------------------------------------------------------------

PW = "Tr0ub4dor3xyz"
LABELLED = [
    f"api_key: {PW}",
    f'{{"client_secret": "{PW}"}}',
    f"export ACCESS_TOKEN={PW}",
    f"token: {PW}",
    f"the secret is {PW}",
    f"passcode={PW}",
    f"my password is {PW}",
    f"p\u0430ssword: {PW}",  # Cyrillic а
    f"\u0440\u0430ssword: {PW}",  # Cyrillic р and а
    f"| password | {PW} |",  # a markdown table
    f"password\t{PW}",  # a TSV
    f"pass phrase: {PW}",
    f"Passwort: {PW}",
    f"senha: {PW}",
    f"contrase\u00f1a: {PW}",
    f"\u043f\u0430\u0440\u043e\u043b\u044c: {PW}",  # пароль
    f"\u5bc6\u7801\uff1a{PW}",  # 密码：
]
HOMOGLYPH = {
    "\u0440hone: 4155552671": "4155552671",  # Cyrillic р
    "\u0455\u0455n: 123456789": "123456789",  # Cyrillic ѕ
    "key \u0410KIAQ3EGUOAQZ5XJ4T7W": "KIAQ3EGUOAQZ5XJ4T7W",  # Cyrillic А
    "mail j\u0430ne.doe@ex\u0430mple.com": "ne.doe@ex",
    "\u039f\u03a1\u0395\u039d\u0391I_API_KEY=sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z": "Ab3dEf6h",
}
#: What must reach the upstream as written: labels of things that are not secrets.
LOOKALIKES = [
    "token: 50256",
    "max token: 4096",
    "the token is 'Hello'",
    "api_key: YOUR_API_KEY",
    "api_key=os.environ['OPENAI_API_KEY']",
    "secret: Optional[str] = None",
    "access_token: accessToken",
    "the password is correct",
    "the password was too short",
    "| password | string | required |",
    "a password-protected file in pass-through mode",
    "\u041f\u0440\u0438\u0432\u0435\u0442, \u043a\u0430\u043a \u0434\u0435\u043b\u0430? \u0395\u03bb\u03bb\u03ac\u03b4\u03b1 2024",
]


def test_credentials_after_other_labels_and_homoglyph_labels_do_not_reach_the_upstream(
    client, upstream
) -> None:
    texts = [*LABELLED, *HOMOGLYPH, *LOOKALIKES]
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": t} for t in texts])
    sent = [m["content"] for m in orjson.loads(_sent(upstream))["messages"]]
    for text, out in zip(LABELLED, sent, strict=False):
        assert PW not in out and "<PASSWORD_1>" in out, (text, out)
    for (text, needle), out in zip(HOMOGLYPH.items(), sent[len(LABELLED) :], strict=False):
        assert needle not in out and "<" in out, (text, out)
    assert sent[-len(LOOKALIKES) :] == LOOKALIKES


def test_an_integral_float_in_free_json_is_scanned_as_its_digits(client, upstream) -> None:
    client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        metadata={"card": 4111111111111111.0, "ratio": 1234567.5, "big": 1e300},
        temperature=1.0,
    )
    sent = orjson.loads(_sent(upstream))
    assert sent["metadata"]["card"] == "<CREDIT_CARD_1>"
    assert sent["metadata"]["ratio"] == 1234567.5 and sent["metadata"]["big"] == 1e300
    assert sent["temperature"] == 1.0


def test_forwarded_headers_are_scanned_and_a_w3c_traceparent_passes(client, upstream) -> None:
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    client.chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "hi"}],
        extra_headers={"tracestate": f"vendor=u:{NEW}", "openai-beta": f"key={KEY}", "traceparent": trace},
    )
    headers = {k.lower(): v for k, v in upstream.requests[-1].headers.items()}
    assert headers["tracestate"] == "vendor=u:<EMAIL_ADDRESS_1>"
    assert headers["openai-beta"] == "key=<OPENAI_API_KEY_1>"
    assert headers["traceparent"] == trace
    client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}], extra_headers={"traceparent": KEY}
    )
    assert KEY not in str(upstream.requests[-1].headers)


def test_a_compressed_body_is_refused_with_a_message_that_says_why(gw, upstream) -> None:
    body = orjson.dumps({"model": "gpt-test", "messages": [{"role": "user", "content": f"mail {NEW}"}]})
    answer = httpx.post(
        f"{gw.base_url}/chat/completions",
        content=gzip.compress(body),
        headers={"authorization": f"Bearer {TEST_KEY}", "content-encoding": "gzip"},
    )
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"
    assert "Content-Encoding" in answer.json()["error"]["message"]
    assert upstream.requests == []


def test_the_forwarded_headers_are_the_ones_redaction_reads() -> None:
    from gateway.providers.stage import _FORWARD_HEADERS
    from gateway.redaction.headers import FORWARDED

    assert FORWARDED == _FORWARD_HEADERS


# -- answers ---------------------------------------------------------------------------------


def test_a_streamed_responses_terminal_event_is_read_whole_not_only_its_output(client, upstream) -> None:
    said = f"write to {NEW} with {KEY}"
    events = [
        {"type": "response.created", "sequence_number": 0, "response": _response("in_progress")},
        {
            "type": "response.incomplete",
            "sequence_number": 1,
            "response": _response(
                "incomplete",
                incomplete_details={"reason": "max_output_tokens"},
                output_text=said,  # what some compatible servers add
                metadata={"note": said},
            ),
        },
    ]
    upstream.script_answer(events=events)
    seen = list(client.responses.create(model="gpt-test", input="hi", stream=True))
    raw = orjson.dumps([e.model_dump() for e in seen]).decode()
    assert NEW not in raw and KEY not in raw, raw
    final = seen[-1]
    assert final.type == "response.incomplete" and final.sequence_number == 1
    assert final.response.metadata == {"note": "write to <EMAIL_ADDRESS_1> with <OPENAI_API_KEY_1>"}


def test_a_created_event_echoing_the_request_gets_the_callers_values_back(client, upstream) -> None:
    mine = "jane.caller@example.com"
    events = [
        {
            "type": "response.created",
            "sequence_number": 0,
            "response": _response("in_progress", instructions="answer <EMAIL_ADDRESS_1>"),
        },
        {"type": "response.completed", "sequence_number": 1, "response": _response("completed")},
    ]
    upstream.script_answer(events=events)
    seen = list(client.responses.create(model="gpt-test", input=f"I am {mine}", stream=True))
    assert mine not in _sent(upstream)
    assert seen[0].response.instructions == f"answer {mine}"


@pytest.mark.parametrize("stream", ["chat", "responses"])
def test_an_index_that_is_not_a_number_is_a_malformed_stream_not_a_500(client, upstream, stream: str) -> None:
    if stream == "chat":
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-test"}
        upstream.script_answer(
            events=[
                {
                    **chunk,
                    "choices": [{"index": [0], "delta": {"content": f"hi {NEW}"}, "finish_reason": None}],
                }
            ]
        )
        request = {"messages": [{"role": "user", "content": "hi"}]}
        create: Any = client.chat.completions.create
    else:
        delta = {
            "type": "response.output_text.delta",
            "item_id": "m",
            "content_index": 0,
            "delta": f"hi {NEW}",
        }
        upstream.script_answer(events=[{**delta, "sequence_number": 0, "output_index": {"a": 1}}])
        request = {"input": "hi"}
        create = client.responses.create
    with pytest.raises(openai.APIStatusError) as caught:
        list(create(model="gpt-test", stream=True, **request))
    assert caught.value.status_code == 502
    assert NEW not in str(caught.value.body)
