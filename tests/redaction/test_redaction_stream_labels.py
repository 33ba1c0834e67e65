"""Streams keep the label a recognizer needs, inside whitespace-free runs and across forced
releases: an AWS secret key after ``"SecretAccessKey":``, a labelled SSN, a password after
``password=`` or in a URL, a phone number after ``phone:``, anywhere in minified JSON or a URL,
for every chunking. The stream must equal whole-text redaction and leak nothing."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.call import Call, Endpoint
from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings
from gateway.redaction.redactor import Redactor
from gateway.redaction.state import RedactionState

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SSN = "219099999"
PASSWORD = "Tr0ub4dor3xq"
PHONE = "4155552671"
#: (carrier, value): a label-dependent secret, written as minified JSON or a URL would.
CARRIERS = [
    ('"SecretAccessKey":"{v}"', AWS_SECRET),
    ('"aws_secret_access_key":"{v}"', AWS_SECRET),
    ('"ssn":"{v}"', SSN),
    ('"SSN":{v}', SSN),
    ('"password":"{v}"', PASSWORD),
    ("?user=bob&password={v}&next=%2Fhome", PASSWORD),
    ("postgres://admin:{v}@db.internal:5432/app", PASSWORD),
    ('"phone":{v}', PHONE),
]


@pytest.fixture(scope="module")
def small(redactor: Redactor) -> Redactor:
    """Forced releases every 256 characters, so every offset around one is cheap to try."""
    return build(RedactionSettings(hash_salt="test-salt-0123456789", stream_max_pending=256))


def _state(redactor: Redactor) -> RedactionState:
    return redactor.new_state(Call("lbl", Endpoint.CHAT, {"model": "m", "messages": []}, {}))


def _whole(redactor: Redactor, text: str) -> str:
    return redactor.redact_output_text(text, _state(redactor), json=False, path="p")


def _stream(redactor: Redactor, chunks: list[str]) -> str:
    channel = redactor.new_channel(_state(redactor), json=False, path="p")
    return "".join(channel.feed(c) for c in chunks) + channel.flush()


def _chunked(text: str, how: int | str, seed: int = 0) -> list[str]:
    if isinstance(how, int):
        return [text[i : i + how] for i in range(0, len(text), how)]
    rng = random.Random(seed)
    points = sorted({0, len(text), *(rng.randrange(len(text) + 1) for _ in range(len(text) // 20 + 2))})
    return [text[a:b] for a, b in itertools.pairwise(points)]


def _minified(filler: int, carrier: str, value: str, rng: random.Random) -> str:
    pad = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(filler))
    return '{"id":"' + pad + '",' + carrier.format(v=value) + ',"ok":true,"tail":"' + "x" * 80 + '"}'


def _check(redactor: Redactor, text: str, value: str, chunkings: list[int | str]) -> None:
    whole = _whole(redactor, text)
    assert value not in whole, "the whole-text redaction finds it (baseline)"
    for how in chunkings:
        streamed = _stream(redactor, _chunked(text, how))
        assert value not in streamed, f"leaked with chunking {how!r}"
        assert streamed == whole, f"stream differs from whole text with chunking {how!r}"


@pytest.mark.parametrize(("carrier", "value"), CARRIERS)
def test_a_label_survives_every_offset_around_a_forced_release(
    small: Redactor, carrier: str, value: str
) -> None:
    rng = random.Random(1)
    for filler in range(120, 520, 9):  # the label and the value cross the 256-character release
        _check(small, _minified(filler, carrier, value, rng), value, [1, 3, "random"])


@pytest.mark.parametrize(("carrier", "value"), CARRIERS[:3] + CARRIERS[4:6])
def test_a_label_survives_a_16kb_whitespace_free_run(redactor: Redactor, carrier: str, value: str) -> None:
    rng = random.Random(2)
    for filler in (16_300, 16_384 - 70, 20_000):
        _check(redactor, _minified(filler, carrier, value, rng), value, [3, "random", 4096])


def test_a_url_with_credentials_after_a_long_path_is_redacted_in_a_stream(redactor: Redactor) -> None:
    url = "https://example.com/" + "a/" * 9000 + "?token=x&password=" + PASSWORD + "&q=1 then more text"
    _check(redactor, url, PASSWORD, [1, 3, "random"])


def test_a_one_character_stream_of_a_long_run_costs_few_analyses(redactor: Redactor) -> None:
    text = "x" * 40_000 + " end"
    before = redactor.engine.presidio_calls
    channel = redactor.new_channel(_state(redactor), json=False, path="p")
    out = "".join(channel.feed(c) for c in text) + channel.flush()
    assert out == text
    # Retries back off geometrically between forced releases: not one analysis per character.
    assert redactor.engine.presidio_calls - before < 200


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    carrier=st.sampled_from(CARRIERS),
    filler=st.integers(min_value=0, max_value=900),
    prose=st.booleans(),
    cut_points=st.lists(st.integers(min_value=0, max_value=2_000), max_size=80),
)
def test_label_dependent_secrets_stream_like_whole_text_for_any_chunking(
    small: Redactor, carrier, filler: int, prose: bool, cut_points: list[int]
) -> None:
    value = carrier[1]
    text = _minified(filler, carrier[0], value, random.Random(filler))
    if prose:
        text = "Here is the config you asked for: " + text + " Let me know if it works."
    points = sorted({p % (len(text) + 1) for p in cut_points} | {0, len(text)})
    chunks = [text[a:b] for a, b in itertools.pairwise(points)]
    streamed = _stream(small, chunks)
    assert value not in streamed
    assert streamed == _whole(small, text)
