"""The work budget is per request, across all fields: a hostile request (issue 17: ten
messages of 1,999 phone numbers) is refused with the documented error before any recognizer
runs; the same content spread so each field is small is refused too; a legitimate dense one
is redacted; texts already analysed (an agent resending its conversation) are not scanned
again but their values, which are still replaced, are charged at their share; identical
texts of one request are charged and replaced once."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import httpx
import openai
import orjson
import pytest

from gateway.errors import BadRequest
from gateway.redaction.budget import CACHED_PER_CANDIDATE, TEXT_CHARS
from gateway.redaction.component import Redaction, build
from gateway.redaction.config import RedactionSettings
from tests.harness import PASS_THROUGH, TEST_KEY, RunningGateway, gateway_settings, running_gateway
from tests.redaction.conftest import chat_call
from tests.redaction.dense import contacts_csv, hostile_messages

BUDGET = {
    "max_request_chars": 300_000,
    "max_candidates": 3000,
    "max_phone_candidates": 200,
    "max_request_values": 5000,
}


@pytest.fixture(scope="module")
def gw(fake_upstream, tmp_path_factory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("redaction-budget")
    overrides = {**PASS_THROUGH, "redaction": {"enabled": True, **BUDGET}}
    with running_gateway(gateway_settings(root, fake_upstream.base_url, **overrides)) as running:
        yield running


def _post(gw: RunningGateway, messages: list[dict[str, str]], **extra: object) -> httpx.Response:
    return httpx.post(
        f"{gw.base_url}/chat/completions",
        json={"model": "gpt-test", "messages": messages, **extra},
        headers={"authorization": f"Bearer {TEST_KEY}"},
        timeout=60,
    )


def _assert_error(resp: httpx.Response, status: int, code: str) -> None:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == code and error["type"] == "invalid_request_error" and error["message"]
    assert resp.headers["x-should-retry"] == "false"


def test_the_hostile_request_is_refused_before_any_recognizer_runs(gw, upstream) -> None:
    engine = gw.component(Redaction).redactor.engine
    before = engine.presidio_calls
    resp = _post(gw, hostile_messages(10, 1999))
    _assert_error(resp, 400, "content_too_complex")
    assert engine.presidio_calls == before
    assert upstream.requests == []


def test_the_budget_counts_every_field_of_the_request(gw, upstream) -> None:
    csv, _ = contacts_csv(1000, seed=5)  # 1,000 numbers: fits alone
    resp = _post(gw, [{"role": "user", "content": csv}])
    assert resp.status_code == 200, resp.text
    parts = [contacts_csv(1000, seed=s)[0] for s in (6, 7, 8, 9)]  # 4,000 across four fields
    _assert_error(_post(gw, [{"role": "user", "content": p} for p in parts]), 400, "content_too_complex")


def test_too_many_characters_across_fields_is_413_content_too_large(gw, upstream) -> None:
    prose = "The deployment finished and the health check passed without errors. " * 1400  # ~97 KB
    fits = _post(gw, [{"role": "user", "content": prose + " one"}])
    assert fits.status_code == 200, fits.text
    resp = _post(gw, [{"role": "user", "content": prose + f" part {i}"} for i in range(4)])
    _assert_error(resp, 413, "content_too_large")
    assert len(upstream.requests) == 1


def test_a_conversation_already_analysed_is_not_charged_again(gw, upstream) -> None:
    prose = "We should add a metric for queue depth and alert when it stays high. " * 1300  # ~90 KB
    history = [
        {"role": "user" if i % 2 == 0 else "assistant", "content": prose + f" turn {i}"} for i in range(3)
    ]
    assert _post(gw, history).status_code == 200  # 270 KB: fits
    grown = [*history, {"role": "user", "content": prose + " turn 3"}]  # 360 KB, 90 KB of it new
    resp = _post(gw, grown)
    assert resp.status_code == 200, resp.text
    assert "turn 3" in orjson.loads(upstream.requests[-1].body)["messages"][-1]["content"]


def test_a_formatted_contact_list_within_budget_is_redacted_through_the_sdk(gw, upstream) -> None:
    csv, phones = contacts_csv(1500, seed=11)
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": csv}])
    sent = orjson.loads(upstream.requests[-1].body)["messages"][0]["content"]
    assert sent.count("<PHONE_NUMBER_") == 1500 and not any(p in sent for p in phones)


def test_a_whole_answer_has_its_own_budget_which_records_and_never_refuses() -> None:
    """The answer is paid for: going over its budget is recorded, and it is scanned in full."""
    redactor = build(RedactionSettings(max_candidates=50, max_phone_candidates=10))
    state = redactor.new_state(chat_call([]))
    dense = " ".join(f"+44 20 7946 {n:04d}" for n in range(100))  # 100 matcher candidates
    out = redactor.redact_output_text(dense, state, json=False, path="choices[0].message.content")
    assert "7946" not in out and out.count("PHONE_NUMBER") == 100
    assert state.answer_budget is not None and state.answer_budget.over is not None
    redactor.engine.close()


def _over_budget(gw: RunningGateway) -> float:
    return gw.ctx.registry.get_sample_value("wardgate_redaction_answer_over_budget_total") or 0.0


@pytest.mark.parametrize("stream", [False, True])
def test_an_answer_over_its_budget_is_delivered_redacted_not_thrown_away(gw, upstream, stream: bool) -> None:
    """The provider ran and billed it: a 400 then threw the answer away. Stream or not, the
    answer is scanned in full and delivered (and booked at its real cost, like any answer)."""
    phones = [f"+44 20 7946 {n:04d}" for n in range(300)]  # over the 200 matcher candidates
    upstream.script_text("Numbers: " + ", ".join(phones))
    before = _over_budget(gw)
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    if stream:
        chunks = client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "list them"}], stream=True
        )
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    else:
        answer = client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "list"}]
        )
        text = answer.choices[0].message.content or ""
    assert text.startswith("Numbers: ") and not any(p in text for p in phones)
    assert text.count("PHONE_NUMBER") == 300
    assert _over_budget(gw) == before + 1


def test_values_of_cached_texts_are_charged_at_their_share() -> None:
    """Ten distinct texts of 1,999 numbers, each sent alone first (so all are cache hits), cost
    20,000 replacements: a request of cached texts is bounded by what replacing costs."""
    redactor = build(RedactionSettings(max_candidates=300))
    engine = redactor.engine
    texts = [contacts_csv(100, seed=100 + s)[0] for s in range(40)]
    for text in texts:  # each fits alone as new text (100 candidates)
        assert len(engine.analyze(text, engine.budget())) == 100
    presidio = engine.presidio_calls
    fits = 300 * CACHED_PER_CANDIDATE // 100  # cached texts of 100 values the allowance buys
    assert len(asyncio.run(engine.analyze_many(texts[:fits]))) == fits
    with pytest.raises(BadRequest) as info:
        asyncio.run(engine.analyze_many(texts[: fits + 1]))
    assert info.value.code == "content_too_complex" and "replace" in info.value.message
    # one cached text resent many times is one text's values (replaced once, see below)
    assert len(asyncio.run(engine.analyze_many([texts[0]] * 200))) == 200
    # new text and cached values share the allowance
    budget = engine.budget()
    budget.cached(100 * CACHED_PER_CANDIDATE)
    with pytest.raises(BadRequest):
        engine.analyze(contacts_csv(250, seed=99)[0], budget)
    assert engine.presidio_calls == presidio, "refused before any recognizer ran"
    engine.close()


def test_identical_texts_of_one_request_are_replaced_alike(gw, upstream) -> None:
    csv, phones = contacts_csv(1000, seed=12)
    messages = [{"role": "user", "content": csv} for _ in range(10)]
    messages.append({"role": "user", "content": "and this one: " + phones[3]})
    resp = _post(gw, messages)
    assert resp.status_code == 200, resp.text
    sent = [m["content"] for m in orjson.loads(upstream.requests[-1].body)["messages"]]
    assert len(set(sent[:10])) == 1 and sent[0].count("<PHONE_NUMBER_") == 1000
    assert not any(p in sent[0] for p in phones)
    fourth = sent[0].splitlines()[4].split(",")[1]  # the placeholder of phones[3]
    assert sent[10] == "and this one: " + fourth
    # resent: every text is a cache hit now, charged 10,000 / 8 at most, within the budget
    again = _post(gw, messages)
    assert again.status_code == 200, again.text
    assert orjson.loads(upstream.requests[-1].body)["messages"][0]["content"] == sent[0]


def test_many_short_new_texts_are_charged_their_fixed_cost(gw, upstream) -> None:
    """Each new text costs a fixed amount before its first character: 10,000 distinct
    two-character strings (~60 KB) in a field nobody knows are 413, before any analysis."""
    engine = gw.component(Redaction).redactor.engine
    before = engine.presidio_calls
    hello = [{"role": "user", "content": "hello"}]
    many = [f"{i:02x}"[-2:] + chr(0x4E00 + i) for i in range(4000)]  # distinct, no candidates
    resp = _post(gw, hello, x=many)
    _assert_error(resp, 413, "content_too_large")
    assert f"each text counts {TEXT_CHARS} more" in resp.json()["error"]["message"]
    assert engine.presidio_calls == before and upstream.requests == []
    fits = 300_000 // (TEXT_CHARS + 2) // 2
    assert _post(gw, hello, x=many[:fits]).status_code == 200


def test_a_body_with_more_values_than_the_walk_visits_is_refused(gw, upstream) -> None:
    """A million ``"a"`` (or numbers) in a field nobody knows took seconds to walk; past
    ``max_request_values`` the walk stops and the request is 400, nested or flat."""
    hello = [{"role": "user", "content": "hello"}]
    for shape in (["a"] * 5001, [1] * 5001, {"k": [{"v": "a"}] * 2600}, [["a", "b"]] * 1700):
        _assert_error(_post(gw, hello, x=shape), 400, "content_too_complex")
    assert upstream.requests == []
    assert _post(gw, hello, x=["a"] * 4000).status_code == 200
