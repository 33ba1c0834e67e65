"""Exact cache through the real gateway and the openai SDK: hits and misses on both APIs,
stream and not, in either form; what is and is not shared, stored and looked up."""

from __future__ import annotations

import unicodedata
import uuid
from typing import Any

import httpx
import openai
import pytest

from gateway.http.launch import ServedApp
from tests.cache.conftest import SECOND_KEY
from tests.harness import ADMIN_KEY, OTHER_TEAM_KEY, TEST_KEY
from tests.waiting import FakeClock


def _client(gw: ServedApp, key: str = TEST_KEY, **headers: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=key, timeout=30, default_headers=headers or None)


def _prompt() -> list[dict[str, str]]:
    return [{"role": "user", "content": f"Plan step {uuid.uuid4().hex}"}]


def _chat(
    gw: ServedApp, messages: Any, key: str = TEST_KEY, headers: dict[str, str] | None = None, **kw: Any
) -> Any:
    kw.setdefault("temperature", 0)
    return _client(gw, key, **(headers or {})).chat.completions.with_raw_response.create(
        model="gpt-test", messages=messages, **kw
    )


def _sent(upstream: Any) -> int:
    return len([r for r in upstream.requests if r.path.endswith(("/chat/completions", "/responses"))])


def test_chat_miss_then_hit_returns_the_answer_with_a_new_id(gateway: ServedApp, upstream: Any) -> None:
    messages = _prompt()
    first = _chat(gateway, messages)
    second = _chat(gateway, messages)
    assert first.headers["x-wardgate-cache"] == "miss"
    assert second.headers["x-wardgate-cache"] == "hit"
    a, b = first.parse(), second.parse()
    assert b.choices[0].message.content == a.choices[0].message.content
    assert b.id != a.id and b.id.startswith("chatcmpl-")
    assert b.usage is not None and b.usage.prompt_tokens_details is not None
    assert b.usage.prompt_tokens_details.cached_tokens == b.usage.prompt_tokens
    assert _sent(upstream) == 1


def test_chat_stream_hit_is_a_well_formed_stream_with_usage_when_asked(
    gateway: ServedApp, upstream: Any
) -> None:
    messages = _prompt()
    plain = _chat(gateway, messages).parse()  # stored from a non-stream answer
    client = _client(gateway)
    with client.chat.completions.with_streaming_response.create(
        model="gpt-test",
        messages=messages,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ) as response:
        assert response.headers["x-wardgate-cache"] == "hit"
        chunks = list(response.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    usage = [c.usage for c in chunks if c.usage is not None]
    assert len(usage) == 1 and usage[0].prompt_tokens_details.cached_tokens == usage[0].prompt_tokens
    # Without include_usage: no usage chunk.
    chunks = list(
        client.chat.completions.create(model="gpt-test", messages=messages, temperature=0, stream=True)
    )
    assert all(c.usage is None for c in chunks)
    assert _sent(upstream) == 1


def test_a_streamed_answer_is_stored_and_serves_a_plain_call(gateway: ServedApp, upstream: Any) -> None:
    messages = _prompt()
    client = _client(gateway)
    streamed = "".join(
        c.choices[0].delta.content or ""
        for c in client.chat.completions.create(
            model="gpt-test", messages=messages, seed=7, temperature=1, stream=True
        )
        if c.choices
    )
    hit = _chat(gateway, messages, seed=7, temperature=1)
    assert hit.headers["x-wardgate-cache"] == "hit"
    assert hit.parse().choices[0].message.content == streamed
    assert _sent(upstream) == 1


@pytest.mark.parametrize("stream_first", [False, True])
def test_responses_api_hits_in_either_form(gateway: ServedApp, upstream: Any, stream_first: bool) -> None:
    text = f"Summarise item {uuid.uuid4().hex}"
    client = _client(gateway)
    if stream_first:
        events = list(client.responses.create(model="gpt-test", input=text, temperature=0, stream=True))
        first = next(e.response for e in events if e.type == "response.completed")
    else:
        first = client.responses.create(model="gpt-test", input=text, temperature=0)
    raw = client.responses.with_raw_response.create(model="gpt-test", input=text, temperature=0)
    assert raw.headers["x-wardgate-cache"] == "hit"
    hit = raw.parse()
    assert hit.output_text == first.output_text and hit.id != first.id
    events = list(client.responses.create(model="gpt-test", input=text, temperature=0, stream=True))
    done = [e for e in events if e.type == "response.completed"]
    assert len(done) == 1 and done[0].response.output_text == first.output_text
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert done[0].response.usage.input_tokens_details.cached_tokens == done[0].response.usage.input_tokens
    assert _sent(upstream) == 1


def test_a_non_deterministic_request_bypasses_the_cache(gateway: ServedApp, upstream: Any) -> None:
    messages = _prompt()
    for _ in range(2):
        assert _chat(gateway, messages, temperature=0.7).headers["x-wardgate-cache"] == "bypass"
    assert _sent(upstream) == 2


def test_two_teams_never_share_an_answer(gateway: ServedApp, upstream: Any) -> None:
    messages = _prompt()
    assert _chat(gateway, messages).headers["x-wardgate-cache"] == "miss"
    assert _chat(gateway, messages, key=OTHER_TEAM_KEY).headers["x-wardgate-cache"] == "miss"
    assert _chat(gateway, messages, key=OTHER_TEAM_KEY).headers["x-wardgate-cache"] == "hit"
    assert _sent(upstream) == 2


def test_two_users_of_a_team_share_a_hit_and_each_gets_their_own_email_back(
    gateway: ServedApp, upstream: Any
) -> None:
    topic = uuid.uuid4().hex
    upstream.script_text("I will write to <EMAIL_ADDRESS_1> about it.", times=1)
    mine = _chat(gateway, [{"role": "user", "content": f"Email me at alice@example.com about {topic}"}])
    theirs = _chat(
        gateway, [{"role": "user", "content": f"Email me at bob@example.org about {topic}"}], key=SECOND_KEY
    )
    assert mine.headers["x-wardgate-cache"] == "miss" and theirs.headers["x-wardgate-cache"] == "hit"
    assert mine.parse().choices[0].message.content == "I will write to alice@example.com about it."
    assert theirs.parse().choices[0].message.content == "I will write to bob@example.org about it."
    assert _sent(upstream) == 1
    assert "alice@example.com" not in upstream.requests[0].body.decode()
    # The streamed hit restores the caller's own value too.
    chunks = _client(gateway, SECOND_KEY).chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": f"Email me at carol@example.net about {topic}"}],
        temperature=0,
        stream=True,
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "I will write to carol@example.net about it."
    )


@pytest.mark.parametrize(
    "variant",
    [
        {"max_tokens": 5},
        {"top_p": 0.5},
        {"response_format": {"type": "json_object"}},
        {"logit_bias": {"50256": -100}},
        {"n": 2},
        {"stop": ["\n"]},
        {"some_future_parameter": True},
        {"tools": [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]},
    ],
)
def test_a_parameter_that_changes_the_answer_is_a_different_key(
    gateway: ServedApp, upstream: Any, variant: dict[str, Any]
) -> None:
    messages = _prompt()
    assert _chat(gateway, messages).headers["x-wardgate-cache"] == "miss"
    extra = {k: v for k, v in variant.items() if k == "some_future_parameter"}
    rest = {k: v for k, v in variant.items() if k not in extra}
    r = _chat(gateway, messages, extra_body=extra or None, **rest)
    assert r.headers["x-wardgate-cache"] == "miss"


def test_unicode_variants_and_the_user_field(gateway: ServedApp, upstream: Any) -> None:
    word = f"café {uuid.uuid4().hex}"
    nfc, nfd = unicodedata.normalize("NFC", word), unicodedata.normalize("NFD", word)
    assert _chat(gateway, [{"role": "user", "content": nfc}]).headers["x-wardgate-cache"] == "miss"
    assert _chat(gateway, [{"role": "user", "content": nfd}]).headers["x-wardgate-cache"] == "miss"
    # Not keyed: who asked, labels, delivery.
    again = _chat(gateway, [{"role": "user", "content": nfc}], user="someone-else", metadata={"a": "b"})
    assert again.headers["x-wardgate-cache"] == "hit"


def test_no_cache_refreshes_and_no_store_neither_reads_nor_writes(gateway: ServedApp, upstream: Any) -> None:
    messages = _prompt()
    assert (
        _chat(gateway, messages, headers={"Cache-Control": "no-store"}).headers["x-wardgate-cache"]
        == "bypass"
    )
    assert _chat(gateway, messages).headers["x-wardgate-cache"] == "miss"  # nothing was stored
    upstream.script_text("a fresher answer", times=1)
    refreshed = _chat(gateway, messages, headers={"Cache-Control": "no-cache"})
    assert refreshed.headers["x-wardgate-cache"] == "store"
    hit = _chat(gateway, messages)
    assert (
        hit.headers["x-wardgate-cache"] == "hit"
        and hit.parse().choices[0].message.content == "a fresher answer"
    )
    assert _sent(upstream) == 3


def test_entries_expire_after_their_ttl(gateway: ServedApp, upstream: Any, clock: FakeClock) -> None:
    messages = _prompt()
    _chat(gateway, messages)
    clock.advance(3599)
    assert _chat(gateway, messages).headers["x-wardgate-cache"] == "hit"
    clock.advance(2)  # the shipped policy's ttl_s is 3600
    assert _chat(gateway, messages).headers["x-wardgate-cache"] == "miss"
    assert _sent(upstream) == 2


def test_purge_by_scope_and_by_model(gateway: ServedApp, upstream: Any) -> None:
    mine, theirs = _prompt(), _prompt()
    _chat(gateway, mine)
    _chat(gateway, theirs, key=OTHER_TEAM_KEY)
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    r = httpx.post(gateway.url + "/admin/cache/purge", headers=admin, json={"scope": "team:test"})
    assert r.status_code == 200 and r.json()["deleted"] >= 1
    assert _chat(gateway, mine).headers["x-wardgate-cache"] == "miss"
    assert _chat(gateway, theirs, key=OTHER_TEAM_KEY).headers["x-wardgate-cache"] == "hit"
    r = httpx.post(gateway.url + "/admin/cache/purge", headers=admin, json={"model": "gpt-test"})
    assert r.status_code == 200
    assert _chat(gateway, theirs, key=OTHER_TEAM_KEY).headers["x-wardgate-cache"] == "miss"
    # Purging everything must be asked for; an agent key is no admin key.
    assert httpx.post(gateway.url + "/admin/cache/purge", headers=admin, json={}).status_code == 400
    agent = {"authorization": f"Bearer {TEST_KEY}"}
    assert (
        httpx.post(gateway.url + "/admin/cache/purge", headers=agent, json={"all": True}).status_code == 401
    )
    stats = httpx.get(gateway.url + "/admin/cache", headers=admin).json()
    assert stats["store"]["store"] == "memory" and stats["process"]["hit"] >= 1


def test_truncated_filtered_and_failed_answers_are_never_stored(gateway: ServedApp, upstream: Any) -> None:
    for finish in ("length", "content_filter"):
        messages = _prompt()
        upstream.script_answer(
            {
                "id": "chatcmpl-x",
                "object": "chat.completion",
                "created": 1,
                "model": "gpt-test",
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": "cut"}, "finish_reason": finish}
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 6},
            },
            times=1,
        )
        _chat(gateway, messages)
        assert _chat(gateway, messages).headers["x-wardgate-cache"] == "miss"
    messages = _prompt()
    upstream.fault("status", times=1, status=400, message="bad")
    with pytest.raises(openai.BadRequestError):
        _chat(gateway, messages)
    assert _chat(gateway, messages).headers["x-wardgate-cache"] == "miss"


def test_an_answer_over_max_entry_bytes_is_not_stored(gateway: ServedApp, upstream: Any) -> None:
    for stream in (False, True):
        messages = _prompt()
        upstream.script_text("word " * 20_000, times=1)  # 100 KB, the module's bound is 64 KB
        if stream:
            list(
                _client(gateway).chat.completions.create(
                    model="gpt-test", messages=messages, temperature=0, stream=True
                )
            )
        else:
            assert len(_chat(gateway, messages).parse().choices[0].message.content) == 100_000
        assert _chat(gateway, messages).headers["x-wardgate-cache"] == "miss"


def test_the_cli_shows_stats_and_purges(gateway: ServedApp, upstream: Any) -> None:
    from typer.testing import CliRunner

    from gateway.cache.cli import app

    messages = _prompt()
    _chat(gateway, messages, key=OTHER_TEAM_KEY)
    runner = CliRunner()
    common = ["--url", gateway.url, "--admin-key", ADMIN_KEY]
    stats = runner.invoke(app, ["stats", *common])
    assert stats.exit_code == 0 and "store: memory" in stats.output and "hit ratio" in stats.output
    purged = runner.invoke(app, ["purge", *common, "--team", "other"])
    assert purged.exit_code == 0 and "deleted" in purged.output
    assert _chat(gateway, messages, key=OTHER_TEAM_KEY).headers["x-wardgate-cache"] == "miss"
    refused = runner.invoke(app, ["purge", *common])
    assert refused.exit_code == 1 and "HTTP 400" in refused.output


def test_an_answer_with_values_of_the_models_own_is_never_stored(gateway: ServedApp, upstream: Any) -> None:
    messages = _prompt()
    upstream.script_text("Write to dana@vendorcorp.com, she knows.", times=1)
    first = _chat(gateway, messages)
    assert "dana@vendorcorp.com" not in (first.parse().choices[0].message.content or "")  # redacted out
    assert _chat(gateway, messages).headers["x-wardgate-cache"] == "miss"  # and not kept in the store
