"""Parse and check a request body before any guard sees it.

Only the fields the gateway itself relies on are checked (model, stream, messages/input,
token caps, tools); every other field passes through untouched, so a provider feature the
gateway does not know yet still works. Checks are hand-written rather than a pydantic model
per request: they cost a few microseconds and give OpenAI's own ``param`` paths.
"""

from __future__ import annotations

from array import array
from collections.abc import Callable
from itertools import accumulate
from typing import Any

import orjson

from gateway import dupkeys
from gateway.call import Endpoint
from gateway.errors import BadRequest, InvalidJSON

_TOKEN_CAPS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
#: Nesting the guards can still process: orjson parses 1024 levels but serialises only 254
#: (the body is serialised again to forward it), and the policy engine (regorus) gives up near
#: 128 levels of its input, which wraps the body. Deeper bodies are refused here, never a 5xx.
MAX_DEPTH = 64
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as signed bytes: +1, -1
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
#: Model names are short ids; a longer one would be echoed into errors and audit lines whole.
MAX_MODEL_LEN = 256


#: Arrays and objects a body may hold. orjson spends ~0.3 µs on each (1.2 million ``[]`` in a
#: 3.6 MB body: ~350 ms, hundreds of times a normal call), so the count is bounded before
#: parsing. A large agent body (100 messages with tool calls and 50 tool schemas) holds a few
#: thousand; past the bound the answer is 400 ``content_too_complex``.
MAX_CONTAINERS = 20_000
#: Values a body may hold, counted as the commas between array elements and object members
#: (outside strings). orjson builds a Python object for each: a 4 MB body of a million
#: ``"a"`` cost ~50-250 ms to parse (~100x a normal call) before any guard ran. An agent's
#: request with 2,000 messages and 128 tool schemas holds a few tens of thousands.
MAX_VALUES = 100_000
#: Embeddings may carry token ids: OpenAI accepts up to 300,000 tokens per request.
MAX_EMBEDDING_VALUES = 310_000
_NO_RETRY = {"x-should-retry": "false"}


def parse_body(raw: bytes, max_values: int = MAX_VALUES) -> dict[str, Any]:
    """The JSON object of a request body; arrays/objects and values bounded before parsing."""
    if not raw:
        raise InvalidJSON("The request body is empty; expected a JSON object.")
    # A body of n bytes holds at most n of any one-byte needle, so a body no longer than a
    # bound cannot exceed it: an ordinary call (a few KB) skips both counts (callgrind: ~2,500
    # instructions of a pass-through call's ~815,000).
    size = len(raw)
    containers = _count_over(raw, MAX_CONTAINERS, b"[", b"{") if size > MAX_CONTAINERS else 0
    if containers:
        raise BadRequest(
            f"The request body holds {containers:,} or more JSON arrays and objects; at most "
            f"{MAX_CONTAINERS:,} are accepted.",
            code="content_too_complex",
            headers=_NO_RETRY,
        )
    values = _count_over(raw, max_values, b",", lower=_separated_strings) if size > max_values else 0
    if values:
        raise BadRequest(
            f"The request body holds {values:,} or more JSON values (array elements and object "
            f"members); at most {max_values:,} are accepted.",
            code="content_too_complex",
            headers=_NO_RETRY,
        )
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            # gzip (Content-Encoding) and UTF-16 bodies end up here: say what is read.
            raise InvalidJSON(
                "The request body is not valid UTF-8: the gateway reads JSON in UTF-8, not compressed "
                "(no Content-Encoding) and in no other charset."
            ) from None
        raise InvalidJSON(f"The request body is not valid JSON: {exc}.") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    # Counting brackets is cheap; only a body with that many of them can be too deep.
    if raw.count(b"[") + raw.count(b"{") > MAX_DEPTH and _nesting_exceeds(raw, MAX_DEPTH):
        raise BadRequest(
            f"The request body is nested too deeply: at most {MAX_DEPTH} levels of arrays and objects."
        )
    if dupkeys.has_duplicate(raw, body):
        path = dupkeys.locate(raw) or "(unknown)"
        raise InvalidJSON(
            f"The request body repeats the key {path}: every key of a JSON object must be unique "
            "(parsers disagree on which of the values counts).",
            param=path,
        )
    return body


#: The first prefix of a body ``_containers_over`` looks at; each next one is 4x longer.
_FIRST_PREFIX = 1 << 16


def _separated_strings(raw: bytes, end: int) -> int:
    """A lower bound of the values in ``raw[:end]``, in C: a quote after a comma (or after a
    comma and a space) is not escaped, so it is a string's edge, and each string has two: at
    least half as many strings as such quotes. The exact count splits the body at every
    quote (~20 ms for 400,000 short strings); this one refuses a million ``"a"`` in ~1 ms."""
    return (raw.count(b',"', 0, end) + raw.count(b', "', 0, end)) // 2


def _count_over(
    raw: bytes, limit: int, *needles: bytes, lower: Callable[[bytes, int], int] | None = None
) -> int:
    """0 if ``raw`` holds at most ``limit`` of the (one-byte) ``needles`` outside strings, else
    how many a prefix of it already holds (more than ``limit``; a lower bound of the whole).

    Growing prefixes, so a hostile body is refused after its first kilobytes instead of after
    scanning all of it (3.6 MB of brackets: ~5 ms of C loops -> ~0.1 ms): in each prefix,
    the needles anywhere bound the count from above (``count`` with bounds, no copy), and
    only a prefix with that many of them pays for the exact count, which skips those inside
    strings. A prefix's exact count never exceeds the whole body's (a string cut at the
    prefix's end only hides needles), so refusing on it is exact. A body within the bound
    costs at most 4/3 of counting it whole. ``lower``: a cheaper lower bound of a prefix's
    count, tried before the exact one.
    """
    size = len(raw)
    end = min(size, _FIRST_PREFIX)
    while True:
        if sum(raw.count(n, 0, end) for n in needles) > limit:
            found = lower(raw, end) if lower is not None else 0
            if found <= limit:
                found = _outside_count(raw if end == size else raw[:end], needles)
            if found > limit:
                return found
        if end == size:
            return 0
        end = min(size, end * 4)


def _outside_parts(raw: bytes) -> list[bytes]:
    """The parts of ``raw`` that lie outside JSON strings (escaped backslashes and quotes dropped
    first, then every other quote-separated part is inside a string). C loops only."""
    if b"\\" in raw:
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    return raw.split(b'"')[::2]


def _outside_strings(raw: bytes) -> bytes:
    return b"".join(_outside_parts(raw))


def _outside_count(raw: bytes, needles: tuple[bytes, ...]) -> int:
    """How many of the one-byte ``needles`` the JSON text ``raw`` holds outside its strings
    (``[{``: the arrays and objects it opens). ~3.5 ms for a hostile 3.6 MB body of brackets,
    ~20 ms for 400,000 short strings."""
    parts = _outside_parts(raw)
    if len(parts) > 64:  # many strings: one joined copy beats a count call per part
        parts = [b"".join(parts)]
    return sum(part.count(n) for part in parts for n in needles)


def _nesting_exceeds(raw: bytes, limit: int) -> bool:
    """Whether valid JSON ``raw`` nests arrays/objects more than ``limit`` levels deep.

    Bytes operations and C loops only: drop escaped backslashes and quotes, keep what lies
    outside strings, reduce it to +1/-1 per bracket; the highest running sum is the depth.
    Measured here: ~45 µs for a 3 KB, 40-message chat (walking the parsed body: ~90 µs), and
    ~100 ms for a hostile 3.6 MB one, less than orjson takes to parse it.
    """
    steps = _outside_strings(raw).translate(_STEPS, _NOT_BRACKETS)
    return max(accumulate(array("b", steps)), default=0) > limit


def check_body(endpoint: Endpoint, body: dict[str, Any]) -> tuple[str, bool]:
    """Return (model, stream) or raise ``BadRequest`` naming the offending ``param``."""
    model = body.get("model")
    if model is None:
        raise BadRequest("You must provide a model parameter.", param="model")
    if not isinstance(model, str) or not model.strip():
        raise BadRequest("'model' must be a non-empty string.", param="model")
    if len(model) > MAX_MODEL_LEN:
        raise BadRequest(f"'model' must be at most {MAX_MODEL_LEN} characters.", param="model")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("'stream' must be a boolean.", param="stream")
    if endpoint is Endpoint.EMBEDDINGS and stream:
        raise BadRequest("Embeddings cannot be streamed.", param="stream")
    for cap in _TOKEN_CAPS:
        value = body.get(cap)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise BadRequest(f"'{cap}' must be a positive integer.", param=cap)
    _CHECKS[endpoint](body)
    return model, bool(stream)


def _check_chat(body: dict[str, Any]) -> None:
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("'messages' is required.", param="messages")
    if not isinstance(messages, list) or not messages:
        raise BadRequest("'messages' must be a non-empty array.", param="messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRequest(f"'messages[{i}]' must be an object.", param=f"messages[{i}]")
        if not isinstance(message.get("role"), str):
            raise BadRequest(f"'messages[{i}].role' must be a string.", param=f"messages[{i}].role")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise BadRequest(
                f"'messages[{i}].content' must be a string or an array of content parts.",
                param=f"messages[{i}].content",
            )
        calls = message.get("tool_calls")
        if calls is not None and (not isinstance(calls, list) or not all(isinstance(c, dict) for c in calls)):
            param = f"messages[{i}].tool_calls"
            raise BadRequest(f"'{param}' must be an array of tool call objects.", param=param)
    _check_tools(body, nested=True)
    options = body.get("stream_options")
    if options is not None:
        if not isinstance(options, dict):
            raise BadRequest("'stream_options' must be an object.", param="stream_options")
        if not isinstance(options.get("include_usage", False), bool):
            raise BadRequest(
                "'stream_options.include_usage' must be a boolean.", param="stream_options.include_usage"
            )


def _check_responses(body: dict[str, Any]) -> None:
    inp = body.get("input")
    if inp is None and not body.get("previous_response_id") and not body.get("prompt"):
        raise BadRequest("'input' is required.", param="input")
    if inp is not None and not isinstance(inp, str | list):
        raise BadRequest("'input' must be a string or an array of input items.", param="input")
    instructions = body.get("instructions")
    if instructions is not None and not isinstance(instructions, str):
        raise BadRequest("'instructions' must be a string.", param="instructions")
    _check_tools(body, nested=False)


def _check_embeddings(body: dict[str, Any]) -> None:
    inp = body.get("input")
    if inp is None:
        raise BadRequest("'input' is required.", param="input")
    if isinstance(inp, str):
        return
    if isinstance(inp, list) and inp and all(isinstance(x, str | int | list) for x in inp):
        return
    raise BadRequest("'input' must be a string, an array of strings, or token arrays.", param="input")


def _check_tools(body: dict[str, Any], *, nested: bool) -> None:
    """Function tools as every guard reads them; chat nests them under ``function`` (``nested``)."""
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise BadRequest("'tools' must be an array.", param="tools")
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict):
                raise BadRequest(f"'tools[{i}]' must be an object.", param=f"tools[{i}]")
            kind = tool.get("type", "function")
            if kind == "function":
                where = f"tools[{i}].function" if nested else f"tools[{i}]"
                _check_function(tool.get("function") if nested else tool, where)
            if isinstance(kind, str) and "name" in tool and (nested or isinstance(tool.get(kind), dict)):
                _check_one_name(tool, kind, f"tools[{i}]")
    functions = body.get("functions") if nested else None  # legacy chat tools
    if functions is not None:
        if not isinstance(functions, list):
            raise BadRequest("'functions' must be an array.", param="functions")
        for i, fn in enumerate(functions):
            _check_function(fn, f"functions[{i}]")
    choice = body.get("tool_choice")
    if choice is not None and not isinstance(choice, str | dict):
        raise BadRequest("'tool_choice' must be a string or an object.", param="tool_choice")
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise BadRequest("'metadata' must be an object.", param="metadata")


def _check_one_name(tool: dict[str, Any], kind: str, where: str) -> None:
    """A chat tool is named by ``<type>.name``, a responses tool by its top-level ``name``; a
    tool carrying both that say different things would let a guard read one name while a
    (lenient) provider runs the other."""
    nested = tool.get(kind)
    inner = nested.get("name") if isinstance(nested, dict) else None
    if tool["name"] != inner and (inner is not None or kind in ("function", "custom")):
        raise BadRequest(
            f"'{where}.name' contradicts '{where}.{kind}.name': a tool has one name.", param=f"{where}.name"
        )


def _check_function(spec: Any, where: str) -> None:
    if not isinstance(spec, dict):
        raise BadRequest(f"'{where}' must be an object.", param=where)
    if not isinstance(spec.get("name"), str):
        raise BadRequest(f"'{where}.name' must be a string.", param=f"{where}.name")
    parameters = spec.get("parameters")
    if parameters is not None and not isinstance(parameters, dict):
        raise BadRequest(f"'{where}.parameters' must be a JSON schema object.", param=f"{where}.parameters")


_CHECKS = {
    Endpoint.CHAT: _check_chat,
    Endpoint.RESPONSES: _check_responses,
    Endpoint.EMBEDDINGS: _check_embeddings,
}
