"""A stream event a guard cannot parse is refused, never passed on as "nothing to check".

orjson refuses a lone surrogate escape (``"\\ud800"``) while Python's ``json`` (the openai SDK)
and JavaScript read it, so such an event used to pass ``redact_out`` untouched: the card and
the email in it reached the client. Now the stream ends with an SSE ``error`` event instead.
"""

from __future__ import annotations

import openai
import pytest

from gateway.errors import UpstreamError
from gateway.sse import SSEEvent
from tests.harness import TEST_KEY

CARD = "4111 1111 1111 1111"
EMAIL = "ana@example.com"
HEAD = b'data: {"id":"chatcmpl-x","object":"chat.completion.chunk","created":1700000000,"model":"m-1","choices":[{"index":0,'


def _chunk(content: bytes) -> bytes:
    return HEAD + b'"delta":{"content":"' + content + b'"},"finish_reason":null}]}\n\n'


def test_an_event_orjson_cannot_parse_raises_instead_of_reading_as_nothing() -> None:
    event = SSEEvent(b"", None, b'{"choices":[{"delta":{"content":"\\ud800 x"}}]}')
    with pytest.raises(UpstreamError):
        _ = event.json


def test_a_lone_surrogate_chunk_ends_the_stream_with_an_error_and_leaks_nothing(gw, upstream) -> None:
    upstream.script_answer(
        events=[
            _chunk(b"Hello, "),
            _chunk(b"\\ud800 card " + CARD.encode() + b" mail " + EMAIL.encode()),
            _chunk(b"bye"),
        ]
    )
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    seen: list[str] = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "hi"}], stream=True
        ):
            seen.extend(c.delta.content or "" for c in chunk.choices)
    text = "".join(seen)
    assert CARD not in text and EMAIL not in text and "4111" not in text
    assert "not valid JSON" in str(caught.value)
