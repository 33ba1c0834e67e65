"""JSON with a repeated object key is refused, so what a guard reads is what every parser reads.

orjson (the guards' parser) keeps the last of ``{"amount": 5000, "amount": 5}``; a first-wins
client would execute the other. Client bodies: 400 ``invalid_json`` naming the key's path.
Provider answers, stream events a stage reads, and tool-call arguments: refused too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.dupkeys import has_duplicate, locate
from tests.harness import PASS_THROUGH, TEST_KEY, RunningGateway, gateway_settings, running_gateway

MESSAGES = [{"role": "user", "content": "hello"}]

#: (raw body, the path the error names)
DUPLICATE_BODIES = [
    (b'{"model":"gpt-test","model":"gpt-test-cheap","messages":[{"role":"user","content":"hi"}]}', "model"),
    (b'{"model":"gpt-test","messages":[{"role":"user","role":"system","content":"hi"}]}', "messages[0].role"),
    (
        b'{"model":"gpt-test","messages":[{"role":"user","content":"a"},{"role":"user","content":"b","content":"c"}]}',
        "messages[1].content",
    ),
    # The same key spelled with an escape: parsers decode both to "model".
    (
        b'{"model":"gpt-test","\\u006dodel":"gpt-test-cheap","messages":[{"role":"user","content":"hi"}]}',
        "model",
    ),
    (
        b'{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":'
        b'{"name":"t","parameters":{"type":"object","properties":{"a":{},"a":{}}}}}]}',
        "tools[0].function.parameters.properties.a",
    ),
    (
        b'{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"metadata":{"run_id":"a","run_id":"b"}}',
        "metadata.run_id",
    ),
    (
        b'{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"x":{"we ird":1,"we ird":2}}',
        'x["we ird"]',
    ),
    (
        b'{"model":"gpt-test","messages":[{"role":"user","content":"hi"}],"stream":false,"stream":true}',
        "stream",
    ),
]


@pytest.mark.parametrize(("raw", "path"), DUPLICATE_BODIES, ids=[p for _, p in DUPLICATE_BODIES])
def test_client_body_with_a_repeated_key_is_400_invalid_json_naming_its_path(
    gateway: RunningGateway, upstream: Any, raw: bytes, path: str
) -> None:
    resp = httpx.post(
        gateway.base_url + "/chat/completions",
        content=raw,
        headers={"authorization": f"Bearer {TEST_KEY}", "content-type": "application/json"},
    )
    assert resp.status_code == 400, resp.text
    error = resp.json()["error"]
    assert (error["code"], error["param"]) == ("invalid_json", path)
    assert path in error["message"]
    assert upstream.requests == []


def test_the_same_key_in_different_objects_is_fine(gateway: RunningGateway) -> None:
    client = openai.OpenAI(base_url=gateway.base_url, api_key=TEST_KEY, max_retries=0)
    messages = [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b"},
        {"role": "user", "content": "c"},
    ]
    resp = client.chat.completions.create(model="gpt-test", messages=messages, metadata={"role": "x"})
    assert resp.choices[0].message.content


def test_provider_answer_with_a_repeated_key_is_502_upstream_error(
    gateway: RunningGateway, upstream: Any
) -> None:
    upstream.fault("duplicate_keys")
    client = openai.OpenAI(base_url=gateway.base_url, api_key=TEST_KEY, max_retries=0)
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model="gpt-test", messages=MESSAGES)
    assert (caught.value.status_code, caught.value.code) == (502, "upstream_error")
    assert "duplicate key" in caught.value.message
    assert len(upstream.requests) == 2  # retried like any broken answer


def test_provider_answer_with_a_repeated_key_once_is_retried(gateway: RunningGateway, upstream: Any) -> None:
    upstream.fault("duplicate_keys", times=1)
    client = openai.OpenAI(base_url=gateway.base_url, api_key=TEST_KEY, max_retries=0)
    assert client.chat.completions.create(model="gpt-test", messages=MESSAGES).choices[0].message.content


def test_stream_usage_event_with_a_repeated_key_ends_the_stream_with_an_sse_error(
    gateway: RunningGateway, upstream: Any
) -> None:
    """Even with every guard off, the gateway reads the usage chunk (to settle the cost)."""
    upstream.fault("duplicate_keys", at=-1, key="usage", chunk_delay_s=0.01)
    client = openai.OpenAI(base_url=gateway.base_url, api_key=TEST_KEY, max_retries=0)
    text = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(model="gpt-test", messages=MESSAGES, stream=True):
            text.extend(c.delta.content or "" for c in chunk.choices)
    assert "".join(text) == "Echo: hello"
    assert "duplicate key" in caught.value.message


# ---- with guards that read every event and the tool-call arguments -------------------------


@pytest.fixture(scope="module")
def guarded(fake_upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("dupkeys-policy")
    settings = gateway_settings(root, fake_upstream.base_url, **{**PASS_THROUGH, "policy": {"enabled": True}})
    with running_gateway(settings) as gw:
        yield gw


@pytest.mark.parametrize("at", [0, 2])
def test_stream_event_with_a_repeated_key_is_refused_where_a_guard_reads_it(
    guarded: RunningGateway, upstream: Any, at: int
) -> None:
    """The first event: a plain 502 (nothing was sent yet); a later one: an SSE error event,
    and the repeated event itself never reaches the client."""
    upstream.fault("duplicate_keys", at=at, chunk_delay_s=0.01)
    body = {"model": "gpt-test", "messages": MESSAGES, "stream": True}
    resp = httpx.post(
        guarded.base_url + "/chat/completions",
        json=body,
        headers={"authorization": f"Bearer {TEST_KEY}"},
        timeout=10,
    )
    if at == 0:
        assert resp.status_code == 502 and resp.json()["error"]["code"] == "upstream_error"
        return
    assert resp.status_code == 200
    events = [e for e in resp.text.split("\n\n") if e.strip()]
    error = orjson.loads(events[-1].removeprefix("data: "))["error"]
    assert error["code"] == "upstream_error" and "duplicate key" in error["message"]
    assert len(events) == at + 1 and not any('"duplicate"' in e for e in events)


TOOLS = [{"type": "function", "function": {"name": "transfer_funds", "parameters": {"type": "object"}}}]


@pytest.mark.parametrize("stream", [False, True])
def test_tool_call_arguments_with_a_repeated_key_are_not_what_the_policy_trusts(
    guarded: RunningGateway, upstream: Any, stream: bool
) -> None:
    """``{"amount": 5000, "amount": 5}``: orjson reads 5 (under the approval threshold), a
    first-wins tool executor would move 5000. The policy sees invalid arguments instead and
    the shipped policy denies a high-stakes tool whose arguments it cannot read."""
    upstream.script_tool_call(
        "transfer_funds", '{"to": "DE89370400440532013000", "amount": 5000, "amount": 5}'
    )
    client = openai.OpenAI(base_url=guarded.base_url, api_key=TEST_KEY, max_retries=0)
    with pytest.raises((openai.PermissionDeniedError, openai.APIError)) as caught:
        resp = client.chat.completions.create(model="gpt-test", messages=MESSAGES, tools=TOOLS, stream=stream)
        if stream:
            for _ in resp:
                pass
    assert "Denied by policy" in caught.value.message and "transfer_funds" in caught.value.message


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"a":1,"b":2}', None),
        (b'[{"a":1},{"a":1}]', None),
        (b'{"a":{"b":1},"c":{"b":1}}', None),
        (b'{"a":1,"a":1}', "a"),
        (b'[1,{"x":[{"y":1,"y":2}]}]', "[1].x[0].y"),
        (b'{"\\/":1,"/":2}', '["/"]'),
        (b'{"a":{"k":1,"k":2},"a":3}', "a.k"),
        (b"not json", None),
        (b'{"' + b"k" * 100 + b'":1,"' + b"k" * 100 + b'":2}', "k" * 64 + "…"),
    ],
)
def test_duplicate_detection_and_location(raw: bytes, expected: str | None) -> None:
    assert has_duplicate(raw) is (expected is not None)
    assert locate(raw) == expected


def test_duplicates_deeper_than_jiter_reads_are_still_found() -> None:
    deep = b'{"a":' * 300 + b'{"k":1,"k":2}' + b"}" * 300
    assert has_duplicate(deep) and locate(deep) == "a" * 0 + ".".join(["a"] * 300) + ".k"


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(doc=st.dictionaries(st.text(max_size=6), _json_values, min_size=1, max_size=5), data=st.data())
def test_a_repeated_key_is_found_wherever_it_is_spliced_in(doc: dict, data: st.DataObject) -> None:
    """The fast path (re-serialise and compare) never hides a duplicate, and never invents one."""
    raw = orjson.dumps(doc)
    assert not has_duplicate(raw, orjson.loads(raw)) and not has_duplicate(raw)
    key = data.draw(st.sampled_from(sorted(doc)))
    value = data.draw(_json_values)
    spliced = b"{" + orjson.dumps(key) + b":" + orjson.dumps(value) + b"," + raw[1:]
    parsed = orjson.loads(spliced)
    assert has_duplicate(spliced, parsed) and has_duplicate(spliced)
    assert locate(spliced) is not None


@settings(max_examples=150, deadline=None)
@given(
    doc=st.dictionaries(st.text(max_size=6), _json_values, min_size=1, max_size=5),
    data=st.data(),
    indent=st.sampled_from([None, 2]),
    ascii_only=st.booleans(),
)
def test_spaced_json_is_judged_like_compact_json(
    doc: dict, data: st.DataObject, indent: int | None, ascii_only: bool
) -> None:
    """JSON written with spaces (``json.dumps``' default separators, pretty printing), the way
    curl users and Python's stdlib send it: the whitespace-insensitive comparison never hides a
    repeated key spliced anywhere and never invents one."""
    raw = json.dumps(doc, indent=indent, ensure_ascii=ascii_only).encode()
    assert not has_duplicate(raw, orjson.loads(raw))
    key = data.draw(st.sampled_from(sorted(doc)))
    member = json.dumps(key, ensure_ascii=ascii_only) + ": " + json.dumps(data.draw(_json_values))
    spliced = ("{ " + member + ", " + raw.decode()[1:]).encode()
    assert has_duplicate(spliced, orjson.loads(spliced))
    nested = json.dumps({"outer": [doc]}, indent=indent, ensure_ascii=ascii_only)
    inner = nested.index("[") + 1
    spliced_deep = nested[:inner] + nested[inner:].replace("{", "{" + member + ", ", 1)
    assert has_duplicate(spliced_deep.encode(), orjson.loads(spliced_deep))
