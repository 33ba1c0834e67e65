"""What every fuzzed answer must satisfy, and the strategies that build hostile request bodies.

The bar (issue 3): bad input gets a clear 4xx, never a 5xx, never a crash; every error is
OpenAI-shaped ``{"error": {"message", "type", "code", "param"}}``; a stream that started
never ends in a gateway-internal error event.
"""

from __future__ import annotations

import json
import os
from typing import Any

import httpx
import orjson
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tests.harness import TEST_KEY

AUTH = {"authorization": f"Bearer {TEST_KEY}"}
JSON_HEADERS = {**AUTH, "content-type": "application/json"}

#: Models per endpoint: the fake upstream (``gpt-test``, ``embed-test``) and the built-in mock.
CHAT_MODELS = ("gpt-test", "mock-chat")
EMBED_MODELS = ("embed-test", "mock-embedding")
ENDPOINT_MODELS = {
    "/v1/chat/completions": CHAT_MODELS,
    "/v1/responses": CHAT_MODELS,
    "/v1/embeddings": EMBED_MODELS,
}
_INTERNAL_CODES = frozenset({"internal_error", "server_error"})
#: ``WARDGATE_FUZZ_EXAMPLES=N`` explores: N examples per test, a fresh random seed each run.
_EXPLORE = os.environ.get("WARDGATE_FUZZ_EXAMPLES")


def fuzz_settings(examples: int) -> settings:
    """CI runs a fixed set of examples (derandomized: the same inputs every run, never flaky);
    exploring runs many more from a random seed. Nothing is stored in a ``.hypothesis`` dir."""
    return settings(
        max_examples=int(_EXPLORE) if _EXPLORE else examples,
        derandomize=not _EXPLORE,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )


def error_problems(status: int, content_type: str, content: bytes) -> list[str]:
    """Why this answer breaks the bar (empty when it does not)."""
    if status >= 500:
        return [f"server error {status}: {content[:500]!r}"]
    if status >= 400:
        if not content_type.startswith("application/json"):
            return [f"{status} error is {content_type!r}, not JSON: {content[:200]!r}"]
        return _shape_problems(content)
    if content_type.startswith("text/event-stream"):
        return _stream_problems(content)
    return []


def _shape_problems(raw: bytes) -> list[str]:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return [f"error body is not JSON: {raw[:200]!r}"]
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return [f"error body has no 'error' object: {raw[:200]!r}"]
    problems = [f"error lacks {k!r}" for k in ("message", "type", "code", "param") if k not in error]
    if not isinstance(error.get("message"), str) or not error.get("message"):
        problems.append("error.message is not a non-empty string")
    if not isinstance(error.get("type"), str):
        problems.append("error.type is not a string")
    for key in ("code", "param"):
        if error.get(key) is not None and not isinstance(error.get(key), str):
            problems.append(f"error.{key} is neither a string nor null")
    return problems


def _stream_problems(raw: bytes) -> list[str]:
    """A started stream may carry a provider's error event, never the gateway's own failure."""
    for line in raw.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if not data.startswith(b"{") or b"error" not in data:
            continue
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue  # a provider's own framing; the gateway passes it through
        if not isinstance(event, dict):
            continue
        error = event["error"] if isinstance(event.get("error"), dict) else event
        if error.get("code") in _INTERNAL_CODES or error.get("type") == "server_error":
            return [f"stream ended in an internal error: {data[:300]!r}"]
    return []


def assert_clean(resp: httpx.Response, context: object = "") -> None:
    """Fail on a 5xx, a badly shaped error, or a stream that ends in a gateway failure."""
    problems = error_problems(resp.status_code, resp.headers.get("content-type", ""), resp.content)
    if problems:
        raise AssertionError(f"{'; '.join(problems)}\nrequest: {str(context)[:600]}")


def assert_error(
    resp: httpx.Response, status: int, code: str | None = None, param: str | None = None
) -> dict:
    assert resp.status_code == status, resp.text[:500]
    assert_clean(resp)
    error = resp.json()["error"]
    if code is not None:
        assert error["code"] == code, error
    if param is not None:
        assert error["param"] == param, error
    return error


# ---- strategies -----------------------------------------------------------------------------

#: Any text, including control characters, NUL, non-BMP and private-use code points.
any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)

#: Lone surrogates are not valid UTF-8, but JSON may spell them as "\ud800" escapes.
lone_surrogates = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=4)

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    any_text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)


def dumps(body: Any) -> bytes:
    """JSON bytes the way any client could send them: surrogates as ``\\uXXXX`` escapes."""
    return json.dumps(body, ensure_ascii=True, allow_nan=False).encode()


def nested(depth: int, leaf: Any = 1, kind: str = "list") -> bytes:
    """``[[[...1...]]]`` or ``{"a":{"a":...}}`` ``depth`` levels deep, as raw JSON bytes."""
    if kind == "list":
        return b"[" * depth + orjson.dumps(leaf) + b"]" * depth
    return b'{"a":' * depth + orjson.dumps(leaf) + b"}" * depth


#: Raw JSON literals that are not valid JSON, or that push a parser's number handling.
odd_literals = st.sampled_from(
    [
        b"NaN",
        b"-Infinity",
        b"Infinity",
        b"1e400",
        b"-1e400",
        b"1" + b"0" * 400,
        b"-0",
        b"0.0000e-99999",
        b"18446744073709551616",
        b"-9223372036854775809",
        b"true ",
        b"nul",
        b'"\\ud800"',
        b'"\\udfff\\ud800"',
        b'"\\u0000"',
        b"[]",
        b"{}",
        b'"\xff\xfe"',
        b'"\xed\xa0\x80"',
        b'"\xc0\xaf"',
        b"0x10",
        b"'x'",
    ]
)
