"""The field table (gateway/redaction/fields.py) is complete against the openai SDK's own types.

Every string field of the SDK's request params (TypedDicts) and response models (pydantic) for
chat completions, responses and embeddings, stream chunks and stream events included, must be
named by a rule: a new SDK field with text in it fails here until the table says what it is.
(At run time a field no rule names is scanned anyway: ``unknown_fields: scan``.) The README's
table is the rendering of the code's.
"""

from __future__ import annotations

import types
import typing
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pydantic
import pytest
from openai.types import CreateEmbeddingResponse, embedding_create_params
from openai.types.chat import ChatCompletion, ChatCompletionChunk, completion_create_params
from openai.types.responses import Response, ResponseStreamEvent, response_create_params
from typing_extensions import is_typeddict

from gateway.redaction.fields import Table, Treat, render_markdown
from gateway.redaction.locations import table

_WRAPPERS = ("Required", "NotRequired", "ReadOnly", "Annotated")


def _strip(tp: Any) -> Any:
    while (get_origin(tp) is not None and getattr(get_origin(tp), "_name", None) in _WRAPPERS) or (
        get_origin(tp) is typing.Annotated
    ):
        tp = get_args(tp)[0]
    return tp


def string_paths(tp: Any, prefix: str = "", out: set[str] | None = None, seen: set | None = None) -> set[str]:
    """Shape paths (``messages[].content[].text``) of every field that can hold free text.
    Enums (``Literal`` strings) are not text. ``{}`` stands for a key chosen by the caller."""
    out = set() if out is None else out
    seen = set() if seen is None else seen
    tp = _strip(tp)
    origin = get_origin(tp)
    name = getattr(origin, "__name__", "") or getattr(origin, "_name", "") or ""
    if tp is str:
        out.add(prefix)
    elif tp in (object,) or tp is Any:
        out.add(prefix + ".k")  # free-form: a string anywhere below
    elif origin is Literal or tp in (int, float, bool, type(None), bytes):
        pass
    elif origin in (Union, types.UnionType):
        for a in get_args(tp):
            string_paths(a, prefix, out, seen)
    elif origin in (list, tuple, set) or name in ("Iterable", "Sequence", "List"):
        for a in get_args(tp):
            if a is not Ellipsis:
                string_paths(a, prefix + "[]", out, seen)
    elif origin is dict or name in ("Mapping", "Dict"):
        string_paths(get_args(tp)[1], prefix + ".k", out, seen)
    elif isinstance(tp, type) and issubclass(tp, pydantic.BaseModel):
        if (tp, prefix) not in seen:
            seen.add((tp, prefix))
            for fname, f in tp.model_fields.items():
                key = f.alias or fname
                string_paths(f.annotation, f"{prefix}.{key}" if prefix else key, out, seen)
    elif is_typeddict(tp):
        if (tp, prefix) not in seen:
            seen.add((tp, prefix))
            for key, ann in typing.get_type_hints(tp, include_extras=True).items():
                string_paths(ann, f"{prefix}.{key}" if prefix else key, out, seen)
    elif origin is not None:
        for a in get_args(tp):
            string_paths(a, prefix, out, seen)
    return out


def _unnamed(t: Table, paths: set[str]) -> list[str]:
    return sorted(p for p in paths if t.lookup(p) is None)


CASES = [
    ("chat request", completion_create_params.CompletionCreateParamsBase, "chat.completions", "request"),
    ("chat answer", ChatCompletion, "chat.completions", "answer"),
    ("chat stream chunk", ChatCompletionChunk, "chat.completions", "answer"),
    ("responses request", response_create_params.ResponseCreateParamsBase, "responses", "request"),
    ("responses answer", Response, "responses", "answer"),
    ("embeddings request", embedding_create_params.EmbeddingCreateParams, "embeddings", "request"),
    ("embeddings answer", CreateEmbeddingResponse, "embeddings", "answer"),
]


@pytest.mark.parametrize(("what", "sdk_type", "endpoint", "direction"), CASES, ids=[c[0] for c in CASES])
def test_every_string_field_of_the_sdk_types_is_named_by_the_table(
    what, sdk_type, endpoint, direction
) -> None:
    paths = string_paths(sdk_type)
    assert paths, f"the SDK walk found no string field in {what}"
    missing = _unnamed(table(endpoint, direction), paths)
    assert not missing, f"{what}: string fields the redaction table does not name: {missing}"


def test_every_string_field_of_the_responses_stream_events_is_named_by_the_table() -> None:
    paths = string_paths(ResponseStreamEvent)
    events, answer = table("responses", "events"), table("responses", "answer")
    whole = {p[len("response.") :] for p in paths if p.startswith("response.")}
    rest = {p for p in paths if not p.startswith("response.")}
    assert not _unnamed(answer, whole), "response objects inside events"
    assert not _unnamed(events, rest)


def test_the_fields_that_leaked_before_are_scanned_in_both_directions() -> None:
    chat_in, chat_out = table("chat.completions", "request"), table("chat.completions", "answer")
    for path in (
        "user",
        "messages[].name",
        "metadata.k",
        "tools[].function.description",
        "tools[].function.parameters.properties.k.description",
        "response_format.json_schema.schema.k",
        "messages[].reasoning_content",
        "safety_identifier",
    ):
        assert chat_in.lookup(path) in (Treat.SCAN, Treat.ANY), path
    assert chat_in.lookup("messages[].content[].image_url.url") is Treat.URL
    assert chat_out.lookup("choices[].logprobs") is Treat.LOGPROBS
    assert chat_out.lookup("choices[].message.reasoning_content") is Treat.SCAN
    assert chat_out.lookup("choices[].message.tool_calls[].function.arguments") is Treat.TOOL
    resp_in = table("responses", "request")
    assert resp_in.lookup("tools[].description") is Treat.SCAN
    assert resp_in.lookup("input[].content[].image_url") is Treat.URL
    # structure stays structure, but only where no row names the field
    assert chat_in.lookup("tools[].function.name") is Treat.STRUCT
    assert chat_in.lookup("messages[].role") is Treat.STRUCT
    assert chat_in.lookup("some_new_provider_field") is None  # -> unknown_fields (scan)


def test_the_readme_renders_the_table_from_the_code() -> None:
    readme = (Path(__file__).resolve().parents[2] / "gateway" / "redaction" / "README.md").read_text()
    assert render_markdown() in readme, "regenerate with: python -m gateway.redaction.fields"
