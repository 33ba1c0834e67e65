"""Streaming redaction: for any text and any chunking, the stream equals whole-text redaction
and no sensitive value (nor any 6-character slice of a secret) ever reaches the client."""

from __future__ import annotations

import itertools

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.call import Call, Endpoint
from gateway.redaction import config
from gateway.redaction.redactor import Redactor
from gateway.redaction.state import RedactionState
from gateway.redaction.vault import PLACEHOLDER_RE
from tests.redaction.conftest import load_corpus

CORPUS = load_corpus()
POSITIVE = [c for c in CORPUS if c["entities"]]
SECRET_TYPES = set(config.SECRET_TYPES)
#: A value the caller sent (restorable) and that the model repeats as a placeholder.
OWN_EMAIL = "owner.of.this@example.org"


def _state(redactor: Redactor) -> RedactionState:
    call = Call("prop", Endpoint.CHAT, {"model": "m", "messages": []}, {})
    state = redactor.new_state(call)
    state.vault.placeholder("EMAIL_ADDRESS", OWN_EMAIL, restorable=True)  # <EMAIL_ADDRESS_1>
    return state


def _whole(redactor: Redactor, text: str, json: bool) -> str:
    return redactor.redact_output_text(text, _state(redactor), json=json, path="p")


def _stream(redactor: Redactor, chunks: list[str], json: bool) -> str:
    channel = redactor.new_channel(_state(redactor), json=json, path="p")
    return "".join(channel.feed(c) for c in chunks) + channel.flush()


def _cuts(text: str, cut_points: list[int]) -> list[str]:
    points = sorted({p % (len(text) + 1) for p in cut_points} | {0, len(text)})
    return [text[a:b] for a, b in itertools.pairwise(points)]


@st.composite
def stream_texts(draw: st.DrawFn) -> tuple[str, list[dict[str, str]]]:
    """1-4 corpus lines joined by spaces or newlines, sometimes with the caller's placeholder."""
    lines = draw(st.lists(st.sampled_from(CORPUS), min_size=1, max_size=4))
    if not any(line["entities"] for line in lines):
        lines.append(draw(st.sampled_from(POSITIVE)))
    parts = [line["text"] for line in lines]
    if draw(st.booleans()):
        parts.insert(draw(st.integers(0, len(parts))), "write to <EMAIL_ADDRESS_1> today")
    sep = draw(st.sampled_from([" ", "\n", "\n\n", "  "]))
    return sep.join(parts), [e for line in lines for e in line["entities"]]


def _assert_no_leak(out: str, entities: list[dict[str, str]]) -> None:
    out = PLACEHOLDER_RE.sub("", out)  # "<PRIVATE_KEY_1>" is not a slice of the key
    for e in entities:
        value = e["value"]
        assert value not in out, f"{e['type']} leaked"
        if e["type"] in SECRET_TYPES:
            compact = value.replace("\n", "")
            for i in range(0, max(1, len(compact) - 5)):
                piece = compact[i : i + 6]
                if piece.strip() and piece.isalnum() and piece.upper() != piece.lower():
                    assert piece not in out, f"a 6-character slice of a {e['type']} leaked"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=stream_texts(), cut_points=st.lists(st.integers(min_value=0, max_value=10_000), max_size=60))
def test_stream_equals_whole_text_redaction_for_any_chunking(redactor: Redactor, case, cut_points) -> None:
    text, entities = case
    chunks = _cuts(text, cut_points)
    streamed = _stream(redactor, chunks, json=False)
    assert streamed == _whole(redactor, text, json=False)
    _assert_no_leak(streamed, entities)
    assert (OWN_EMAIL in streamed) == ("<EMAIL_ADDRESS_1>" in text)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=stream_texts(), cut_points=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40))
def test_streamed_tool_arguments_equal_whole_text_and_stay_valid_json(
    redactor: Redactor, case, cut_points
) -> None:
    text, entities = case
    source = orjson.dumps({"note": text, "n": 1}).decode()
    streamed = _stream(redactor, _cuts(source, cut_points), json=True)
    assert streamed == _whole(redactor, source, json=True)
    decoded = orjson.loads(streamed)["note"]
    _assert_no_leak(decoded, entities)
    assert (OWN_EMAIL in decoded) == ("<EMAIL_ADDRESS_1>" in text)


@settings(max_examples=100, deadline=None)
@given(size=st.integers(min_value=1, max_value=7))
def test_a_spaced_iban_never_leaks_in_one_character_chunks(redactor: Redactor, size: int) -> None:
    text = "Wire it to GB82 WEST 1234 5698 7654 32 by Friday, then call +44 20 7946 0958."
    chunks = [text[i : i + size] for i in range(0, len(text), size)]
    streamed = _stream(redactor, chunks, json=False)
    assert "GB82" not in streamed and "7946" not in streamed
    assert streamed == _whole(redactor, text, json=False)


#: A number the caller sent in JSON (``{"phone": 4155552671}`` -> ``"<PHONE_NUMBER_1>"``).
OWN_NUMBER = "4155552671"


def _number_state(redactor: Redactor) -> RedactionState:
    state = _state(redactor)
    state.vault.replacement(
        "PHONE_NUMBER", OWN_NUMBER, config.Action.RESTORE, json=True, restorable=True, number=True
    )
    return state


_JSON_VALUES = st.one_of(
    st.integers(-(10**12), 10**12),
    st.sampled_from([4111111111111111, 5555555555554444, 4155552671, 0, -1.5e3, True, None]),
    st.sampled_from(["<PHONE_NUMBER_1>", "call <PHONE_NUMBER_1> now", "card 4111 1111 1111 1111", "plain"]),
    st.sampled_from([line["text"] for line in CORPUS[:50]]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    doc=st.dictionaries(
        st.sampled_from(["phone", "mobile", "card", "id", "note", "n", "tel"]), _JSON_VALUES, min_size=1
    ),
    wrap=st.booleans(),
    cut_points=st.lists(st.integers(min_value=0, max_value=10_000), max_size=40),
)
def test_json_with_numbers_streams_like_the_whole_text_and_always_parses(
    redactor: Redactor, doc, wrap: bool, cut_points
) -> None:
    source = orjson.dumps([doc] if wrap else doc).decode()
    whole = redactor.redact_output_text(source, _number_state(redactor), json=True, path="p")
    channel = redactor.new_channel(_number_state(redactor), json=True, path="p")
    streamed = "".join(channel.feed(c) for c in _cuts(source, cut_points)) + channel.flush()
    assert streamed == whole
    parsed = orjson.loads(streamed)  # valid wherever the input was
    out = parsed[0] if wrap else parsed
    assert "4111111111111111" not in streamed and "4111 1111" not in streamed
    for key, value in doc.items():
        if value == "<PHONE_NUMBER_1>":
            assert out[key] == int(OWN_NUMBER), "the caller's number comes back as a number"
        if isinstance(value, int) and not isinstance(value, bool) and out[key] != value:
            assert isinstance(out[key], str) and out[key].startswith("<"), "a number is replaced by a string"
