"""The cost bound before a call, and the loop fingerprint."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from limits_helpers import make_call

from gateway.call import Endpoint
from gateway.limits.config import EstimateSettings
from gateway.limits.estimate import fingerprint, output_upper_bound, prompt_upper_bound

CFG = EstimateSettings()


@given(texts=st.lists(st.text(max_size=200), min_size=1, max_size=8))
def test_prompt_bound_covers_every_utf8_byte_of_the_text(texts: list[str]) -> None:
    messages = [{"role": "user", "content": t} for t in texts]
    call = make_call(body={"model": "m", "messages": messages})
    text_bytes = sum(len(t.encode("utf-8")) for t in texts)
    assert prompt_upper_bound(call, CFG, None) >= text_bytes + CFG.message_overhead_tokens * len(texts)


def test_images_count_a_flat_amount_not_their_base64_size() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + "A" * 500_000}}
    call = make_call(
        body={
            "model": "m",
            "messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"}, image]}],
        }
    )
    bound = prompt_upper_bound(call, CFG, None)
    assert CFG.image_tokens < bound < CFG.image_tokens + 200


#: Any JSON value: ``type`` keys are drawn often, with strings, lists and objects as values.
_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(["type", "text", "image_url", "data", "content"]) | st.text(max_size=8),
            inner,
            max_size=4,
        )
    ),
    max_leaves=20,
)


def _text_bytes(obj: Any) -> int:
    """UTF-8 bytes of every string in ``obj`` that is not a media payload."""
    if isinstance(obj, str):
        return len(obj.encode("utf-8"))
    if isinstance(obj, list):
        return sum(_text_bytes(v) for v in obj)
    if isinstance(obj, dict):
        media = isinstance(obj.get("type"), str) and obj["type"] in (
            "image_url",
            "input_image",
            "image",
            "input_audio",
            "audio",
            "file",
            "input_file",
        )
        return sum(
            _text_bytes(k) + (0 if media and k in ("image_url", "data") else _text_bytes(v))
            for k, v in obj.items()
        )
    return 0


@given(part=_json, schema=_json)
def test_prompt_bound_reads_any_json_shape_and_covers_its_text(part: Any, schema: Any) -> None:
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    body = {"model": "m", "messages": [{"role": "user", "content": [part]}], "tools": tools}
    assert prompt_upper_bound(make_call(body=body), CFG, None) >= _text_bytes(body)
    fingerprint(make_call(body=body), 2)


def test_a_list_or_object_type_is_counted_as_text() -> None:
    for kind in ([], ["image_url"], {"x": 1}):
        part = {"type": kind, "text": "y" * 1000}
        call = make_call(body={"model": "m", "messages": [{"role": "user", "content": [part]}]})
        assert prompt_upper_bound(call, CFG, None) >= 1000


def test_a_media_type_does_not_hide_the_text_beside_the_media() -> None:
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}, "text": "y" * 5000}
    schema = {"type": "object", "properties": {"doc": {"type": "file", "description": "z" * 5000}}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": schema}}]
    call = make_call(body={"model": "m", "messages": [{"role": "user", "content": [image]}], "tools": tools})
    assert prompt_upper_bound(call, CFG, None) >= 10_000 + CFG.image_tokens + CFG.file_tokens


def test_any_nesting_depth_is_counted_without_recursion() -> None:
    deep: Any = "leaf"
    for _ in range(50_000):
        deep = [{"type": ["x"], "v": deep}]
    call = make_call(body={"model": "m", "messages": [{"role": "user", "content": deep}]})
    assert prompt_upper_bound(call, CFG, None) >= 50_000 * len("typev")


def test_fingerprint_reads_tools_of_any_shape() -> None:
    tools = [
        {"type": "custom", "function": [1]},
        {"type": "function", "function": {}, "name": "n"},
        {"name": 5},
    ]
    renamed = [*tools[:2], {"name": 6}]
    call = make_call(body={"model": "m", "messages": [], "tools": tools})
    assert fingerprint(call, 2) != fingerprint(
        make_call(body={"model": "m", "messages": [], "tools": renamed}), 2
    )


def test_prompt_bound_is_clamped_by_the_context_window() -> None:
    call = make_call(body={"model": "m", "messages": [{"role": "user", "content": "x" * 10_000}]})
    assert prompt_upper_bound(call, CFG, 4096) == 4096


def test_a_prompt_stored_upstream_is_bounded_by_the_context_window() -> None:
    call = make_call(
        endpoint=Endpoint.RESPONSES, body={"model": "m", "input": "hi", "previous_response_id": "r"}
    )
    assert prompt_upper_bound(call, CFG, 200_000) == 200_000
    assert prompt_upper_bound(call, CFG, None) == CFG.stored_context_tokens


def test_output_bound_is_the_clients_max_tokens_times_choices() -> None:
    call = make_call(body={"model": "m", "messages": [], "max_completion_tokens": 300, "n": 2})
    assert output_upper_bound(call, CFG, 16_000) == 600
    assert call.body["max_completion_tokens"] == 300


def test_cap_lowers_a_larger_max_tokens_in_the_forwarded_body() -> None:
    cfg = EstimateSettings(max_output_tokens_cap=512)
    call = make_call(body={"model": "m", "messages": [], "max_tokens": 4000})
    assert output_upper_bound(call, cfg, None) == 512
    assert call.body["max_tokens"] == 512


def test_without_max_tokens_the_model_maximum_is_reserved() -> None:
    call = make_call(body={"model": "m", "messages": []})
    assert output_upper_bound(call, CFG, 16_384) == 16_384
    assert "max_tokens" not in call.body


def test_without_any_bound_the_default_is_enforced_in_the_body() -> None:
    chat = make_call(body={"model": "m", "messages": []})
    assert output_upper_bound(chat, CFG, None) == CFG.default_output_tokens
    assert chat.body["max_tokens"] == CFG.default_output_tokens
    resp = make_call(endpoint=Endpoint.RESPONSES, body={"model": "m", "input": "hi"})
    assert output_upper_bound(resp, EstimateSettings(max_output_tokens_cap=100), 16_384) == 100
    assert resp.body["max_output_tokens"] == 100


def test_embeddings_have_no_output() -> None:
    call = make_call(endpoint=Endpoint.EMBEDDINGS, body={"model": "m", "input": ["a", "b"]})
    assert output_upper_bound(call, CFG, None) == 0
    assert prompt_upper_bound(call, CFG, None) >= 2


def _turn(call_id: str, result: str, extra: str = "") -> list[dict[str, object]]:
    return [
        {"role": "user", "content": "find the order" + extra},
        {
            "role": "assistant",
            "tool_calls": [
                {"id": call_id, "type": "function", "function": {"name": "lookup", "arguments": '{"id": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": call_id, "content": result},
    ]


def test_fingerprint_ignores_ids_and_whitespace_but_not_content() -> None:
    a = make_call(body={"model": "m", "messages": _turn("call_1", "not  found")})
    b = make_call(body={"model": "m", "messages": _turn("call_2", "not found ")})
    c = make_call(body={"model": "m", "messages": _turn("call_3", "found it")})
    assert fingerprint(a, 2) == fingerprint(b, 2) != fingerprint(c, 2)


def test_fingerprint_of_the_tail_catches_a_loop_in_a_growing_conversation() -> None:
    history = _turn("c1", "no results")
    longer = history + _turn("c2", "no results", extra=" again")[1:]
    a = make_call(body={"model": "m", "messages": history})
    b = make_call(body={"model": "m", "messages": longer})
    assert fingerprint(a, 2) == fingerprint(b, 2)
    assert fingerprint(a, 0) != fingerprint(b, 0)


def test_the_enforced_chat_field_is_configurable_for_reasoning_models() -> None:
    call = make_call(body={"model": "m", "messages": []})
    output_upper_bound(call, EstimateSettings(chat_output_field="max_completion_tokens"), None)
    assert "max_tokens" not in call.body and call.body["max_completion_tokens"] == CFG.default_output_tokens
