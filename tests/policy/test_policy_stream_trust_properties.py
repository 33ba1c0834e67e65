"""Stream trust as properties: honest streams always pass, any lie in the terminal output fails.

Streams come from the built-in mock (the one model of a well-behaved upstream in the repo)
with generated tool calls and text; the terminal ``response.completed`` is then tampered with
one way or another. Unit level (no HTTP): the end-to-end behaviour is in
``test_policy_stream_judged_on_what_was_streamed.py``.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.call import Endpoint
from gateway.providers.stream_trust import StreamMismatch, _ResponsesTrust
from gateway.sse import SSEEvent
from wardgate_mock import MockOverrides, generate

NAMES = st.sampled_from(["shell", "transfer_funds", "lookup", "delete_customer", "Shell", "run_sql"])
ARGS = st.dictionaries(
    st.sampled_from(["cmd", "amount", "to", "q"]),
    st.one_of(st.integers(-(10**6), 10**6), st.text(max_size=12)),
    max_size=3,
)
CALLS = st.lists(st.tuples(NAMES, ARGS), min_size=1, max_size=3)


def _stream(calls: list[tuple[str, dict[str, Any]]] | None, text: str | None) -> list[dict[str, Any]]:
    answer = generate(
        Endpoint.RESPONSES,
        {"model": "m", "input": "x", "stream": True},
        stream=True,
        overrides=MockOverrides(tool_calls=calls, text=text),
    )
    return [e.json for e in answer.events or [] if not e.is_done]


def _feed(events: list[dict[str, Any]]) -> None:
    trust = _ResponsesTrust()
    for event in events:
        trust.feed(SSEEvent.from_json(event, event=event["type"]))
    trust.feed(SSEEvent.done())


@settings(max_examples=60, deadline=None)
@given(calls=st.one_of(st.none(), CALLS), text=st.one_of(st.none(), st.text(min_size=1, max_size=40)))
def test_honest_streams_always_pass(calls: Any, text: Any) -> None:
    _feed(_stream(calls, text if calls is None else None))


def _tamper(output: list[dict[str, Any]], how: str, index: int) -> list[dict[str, Any]]:
    output = [dict(item) for item in output]
    item = output[index % len(output)]
    if how == "drop":
        output.remove(item)
    elif how == "empty":
        output = []
    elif how == "rename":
        item["name"] = item["name"] + "_x"
    elif how == "arguments":
        item["arguments"] = (
            orjson.dumps({"amount": 1}).decode() if item["arguments"] != '{"amount":1}' else "{}"
        )
    elif how == "retype":
        item["type"] = "custom_tool_call"
    elif how == "add":
        output.append({**item, "id": "fc_extra", "call_id": "call_extra"})
    elif how == "reorder" and len(output) > 1:
        output.reverse()
    return output


@settings(max_examples=80, deadline=None)
@given(
    calls=CALLS,
    how=st.sampled_from(["drop", "empty", "rename", "arguments", "retype", "add", "reorder"]),
    index=st.integers(0, 5),
)
def test_any_lie_in_the_terminal_output_is_refused(calls: Any, how: str, index: int) -> None:
    events = _stream(calls, None)
    final = events[-1]
    assert final["type"] == "response.completed"
    tampered = _tamper(final["response"]["output"], how, index)
    if tampered == final["response"]["output"]:
        return  # e.g. reversing identical items: nothing was changed
    final["response"]["output"] = tampered
    with pytest.raises(StreamMismatch):
        _feed(events)


@settings(max_examples=40, deadline=None)
@given(
    calls=CALLS,
    extra=st.sampled_from(
        [
            "response.output_item.added",
            "response.output_text.delta",
            "response.completed",
            "response.function_call_arguments.delta",
        ]
    ),
)
def test_anything_after_the_terminal_event_is_refused(calls: Any, extra: str) -> None:
    events = _stream(calls, None)
    events.append(
        {
            "type": extra,
            "output_index": 0,
            "delta": "x",
            "item": {"type": "function_call", "name": "shell", "arguments": "{}"},
            "response": events[-1]["response"],
        }
    )
    with pytest.raises(StreamMismatch):
        _feed(events)
