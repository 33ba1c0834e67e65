"""The stream gate (``gate.Gate``) skips ``detect`` on windows where no family has a trigger:
it must never say "nothing" where ``detect`` finds something, and a stream whose windows are
mostly skipped must still equal whole-text redaction, whatever sits at a skipped boundary."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.call import Call, Endpoint
from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings
from gateway.redaction.gate import Gate
from gateway.redaction.redactor import Redactor
from tests.redaction.conftest import load_corpus
from tests.redaction.test_redaction_stream_property import _cuts, _stream, _whole

CORPUS = load_corpus()
#: Clean prose with the digits, colons, dots and dashes of ordinary answers (ids, times,
#: amounts, code): windows of it exercise the gate's refinement, not only its triggers.
FILLER = (
    "The deployment finished at 10:22:00 without errors, ticket 558595 is closed and the "
    "amount was 3791.39 for 38 items (SKU-1701). def retry(fn, attempts=5, base=0.2): return fn() "
    '{"id": 4411, "status": "open", "created_at": "2024-01-11T10:22:00Z"} std::vector<int> v; '
)
#: Values whose detection needs a label, a prefix, a checksum or a shape, one of each family.
SECRETS = [
    "ana.lopez@example.com",
    "+44 20 7946 0958",
    "4111 1111 1111 1111",
    "GB82 WEST 1234 5698 7654 32",
    "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4zAb7cDe0f",
    "AKIAIOSFODNN7EXAMPLE",
    '"SecretAccessKey": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"',
    "SSN: 123456789",
    "192.168.10.23",
    "call me at (355) 852-9749",
    "password: hunter2-Secret!",
]


def _gate(redactor: Redactor) -> Gate:
    return redactor.gate


def test_gate_never_hides_a_finding_on_the_corpus(redactor: Redactor) -> None:
    gate = _gate(redactor)
    for line in CORPUS:
        text = line["text"]
        if redactor.engine.detect(text):
            assert gate.may_find(text), text[:60]
        if not gate.may_find(text):
            assert redactor.engine.detect(text) == ()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(st.sampled_from(CORPUS), min_size=1, max_size=4),
    start=st.integers(0, 400),
    size=st.integers(1, 300),
)
def test_gate_never_hides_a_finding_in_any_window(redactor: Redactor, lines, start, size) -> None:
    """Stream windows start and end anywhere (mid-token, mid-number, mid-label)."""
    text = (FILLER + " ".join(line["text"] for line in lines) + FILLER)[start : start + size]
    if not redactor.gate.may_find(text):
        assert redactor.engine.detect(text) == (), text


def test_an_always_family_disables_the_gate() -> None:
    redactor = build(RedactionSettings(actions={"URL": "redact", "EMAIL_ADDRESS": "redact"}))
    try:
        assert redactor.gate.may_find("plain words, nothing else")
    finally:
        redactor.engine.close()


def test_a_secret_at_every_offset_after_skipped_windows_is_caught(redactor: Redactor) -> None:
    """Long clean text (every window skipped by the gate) and then a value at each offset
    around the release boundaries, streamed in 3-character deltas and in 1 and 7: the stream
    equals whole-text redaction and the value never leaks."""
    rng = random.Random(5)
    prefix = FILLER * 2
    for value in SECRETS:
        for offset in range(0, 260, 7):
            text = prefix[: len(prefix) - offset] + " so, " + value + " and then " + FILLER[:offset]
            step = rng.choice([1, 3, 7])
            chunks = [text[i : i + step] for i in range(0, len(text), step)]
            streamed = _stream(redactor, chunks, json=False)
            assert streamed == _whole(redactor, text, json=False), (value, offset, step)
            core = value.split(": ")[-1].strip('"')
            assert core not in streamed, (value, offset, step)


def test_a_resent_window_that_changed_by_one_character_is_analysed_again(redactor: Redactor) -> None:
    """The gate is a function of the window's text, nothing cached: the clean window and the
    same window with one character changed into a card's last digit are judged apart."""
    clean = "total 4111 1111 1111 111 units shipped today, nothing else to report here"
    dirty = clean.replace("111 units", "1111 units")
    assert redactor.engine.detect(dirty)
    assert redactor.gate.may_find(dirty)
    assert _stream(redactor, _cuts(dirty, [5, 17, 40]), json=False) == _whole(redactor, dirty, json=False)


def test_json_channels_are_gated_on_the_decoded_text(redactor: Redactor) -> None:
    """Tool-call arguments: escapes hide nothing from the gate (it sees what detect sees)."""
    text = '{"note": "ana.lopez\\u0040example.com", "n": "4111\\u00201111 1111 1111", "x": 1}'
    chunks = [text[i : i + 3] for i in range(0, len(text), 3)]
    call = Call("g", Endpoint.CHAT, {"model": "m", "messages": []}, {})
    channel = redactor.new_channel(redactor.new_state(call), json=True, path="p", tool=True)
    streamed = "".join(channel.feed(c) for c in chunks) + channel.flush()
    assert "ana.lopez" not in streamed and "4111" not in streamed


def test_release_timing_first_text_early_then_steps(redactor: Redactor) -> None:
    """The first text goes out after hold-back + 64 characters, as it did before ``stream_step``;
    later text in bursts of about ``stream_step`` (never more held than hold-back + step + a
    token)."""
    holdback, step = redactor.holdback, redactor.settings.stream_step
    text = ("The deployment finished without errors and the health check took longer. " * 40)[:2500]
    call = Call("t", Endpoint.CHAT, {"model": "m", "messages": []}, {})
    channel = redactor.new_channel(redactor.new_state(call), json=False, path="p")
    released = 0
    first_at = None
    most_held = 0
    for n, ch in enumerate(text, 1):
        released += len(channel.feed(ch))
        if released and first_at is None:
            first_at = n
        most_held = max(most_held, n - released)
    assert first_at is not None and first_at <= holdback + 64 + 1
    assert most_held <= holdback + step + 16
    assert released + len(channel.flush()) == len(text)
