"""The field table's rows: per endpoint and direction, each text field's treatment.

Data only: the rules, their order and the shared ``<item>`` / ``<tool>`` rows of the
Responses API. How a path is matched against them, and what each treatment means, is in
``fields.py``; the completeness test walks the ``openai`` SDK's types against these rows.
"""

from __future__ import annotations

from gateway.redaction.treatments import Treat

# (pattern, treatment); first match wins. Shared prefixes for the three places a responses
# item appears: ``input[]`` (request), ``output[]`` / ``item`` (answer, stream events) and
# ``instructions[]`` (a response echoing its input items).
_ITEM_FIELDS: list[tuple[str, Treat]] = [
    ("content", Treat.SCAN),
    ("content[]", Treat.SCAN),
    ("content[].text", Treat.SCAN),
    ("content[].refusal", Treat.SCAN),
    ("content[].image_url", Treat.URL),
    ("content[].file_url", Treat.URL),
    ("content[].file_data", Treat.OPAQUE),
    ("content[].filename", Treat.SCAN),
    ("content[].logprobs/**", Treat.LOGPROBS),
    ("content[].annotations/**", Treat.ANY),
    ("summary[].text", Treat.SCAN),
    ("arguments", Treat.JSON),
    ("arguments/**", Treat.ANY),  # arguments given as an object
    ("input", Treat.SCAN),
    ("output", Treat.SCAN),
    ("output[].text", Treat.SCAN),
    ("output[].stdout", Treat.SCAN),
    ("output[].stderr", Treat.SCAN),
    ("output[].image_url", Treat.URL),
    ("output[].file_url", Treat.URL),
    ("output[].file_data", Treat.OPAQUE),
    ("output[].filename", Treat.SCAN),
    ("output.image_url", Treat.URL),
    ("outputs[].logs", Treat.SCAN),
    ("outputs[].url", Treat.URL),
    ("code", Treat.SCAN),
    ("result", Treat.OPAQUE),  # image generation: base64
    ("encrypted_content", Treat.OPAQUE),
    ("revised_prompt", Treat.SCAN),
    ("queries[]", Treat.SCAN),
    ("results[].text", Treat.SCAN),
    ("results[].filename", Treat.SCAN),
    ("results[].attributes/**", Treat.ANY),
    ("action/**", Treat.ANY),
    ("actions/**", Treat.ANY),
    ("operation.diff", Treat.SCAN),
    ("operation.path", Treat.SCAN),
    ("error", Treat.SCAN),
    ("error.message", Treat.SCAN),
    ("error.content/**", Treat.ANY),
    ("reason", Treat.SCAN),
    ("acknowledged_safety_checks[].message", Treat.SCAN),
    ("pending_safety_checks[].message", Treat.SCAN),
    ("text.format.description", Treat.SCAN),
    ("text.format.schema/**", Treat.ANY),
    ("tools/**", Treat.ANY),  # tool definitions an item carries (tool search results)
    ("environment.skills[].description", Treat.SCAN),
    ("environment.skills[].path", Treat.SCAN),
]

_TOOL_FIELDS: list[tuple[str, Treat]] = [
    ("description", Treat.SCAN),
    ("server_description", Treat.SCAN),
    ("parameters/**", Treat.ANY),
    ("input_schema/**", Treat.ANY),
    ("output_schema/**", Treat.ANY),
    ("format.definition", Treat.SCAN),
    ("tools[].description", Treat.SCAN),
    ("tools[].format.definition", Treat.SCAN),
    ("tools[].parameters/**", Treat.ANY),
    ("tools[].output_schema/**", Treat.ANY),
    ("headers/**", Treat.OPAQUE),  # MCP credentials: never scanned, never logged
    ("authorization", Treat.OPAQUE),
    ("container.network_policy.domain_secrets[].value", Treat.OPAQUE),
    ("environment.network_policy.domain_secrets[].value", Treat.OPAQUE),
    ("environment.skills[].source.data", Treat.OPAQUE),
    ("environment.skills[].description", Treat.SCAN),
    ("environment.skills[].path", Treat.SCAN),
    ("server_url", Treat.URL),
    ("input_image_mask.image_url", Treat.URL),
    ("user_location/**", Treat.ANY),
    ("filters/**", Treat.ANY),
    ("annotations/**", Treat.ANY),
]

CHAT_REQUEST: list[tuple[str, Treat]] = [
    ("messages[].content", Treat.SCAN),
    ("messages[].content[]", Treat.SCAN),
    ("messages[].content[].text", Treat.SCAN),
    ("messages[].content[].refusal", Treat.SCAN),
    ("messages[].content[].image_url.url", Treat.URL),
    ("messages[].content[].input_audio.data", Treat.OPAQUE),
    ("messages[].content[].file.file_data", Treat.OPAQUE),
    ("messages[].content[].file.filename", Treat.SCAN),
    ("messages[].name", Treat.SCAN),
    ("messages[].refusal", Treat.SCAN),
    ("messages[].reasoning_content", Treat.SCAN),
    ("messages[].reasoning", Treat.SCAN),
    ("messages[].reasoning_details/**", Treat.ANY),
    ("messages[].tool_calls[].function.arguments", Treat.JSON),
    ("messages[].tool_calls[].custom.input", Treat.SCAN),
    ("messages[].function_call.arguments", Treat.JSON),
    ("messages[].audio.data", Treat.OPAQUE),
    ("prediction.content", Treat.SCAN),
    ("prediction.content[].text", Treat.SCAN),
    ("tools[].function.description", Treat.SCAN),
    ("tools[].function.parameters/**", Treat.ANY),
    ("tools[].custom.description", Treat.SCAN),
    ("tools[].custom.format.grammar.definition", Treat.SCAN),
    ("functions[].description", Treat.SCAN),
    ("functions[].parameters/**", Treat.ANY),
    ("response_format.json_schema.description", Treat.SCAN),
    ("response_format.json_schema.schema/**", Treat.ANY),
    ("tool_choice.allowed_tools/**", Treat.KEEP),
    ("web_search_options.user_location/**", Treat.ANY),
    ("stop", Treat.SCAN),
    ("stop[]", Treat.SCAN),
    ("user", Treat.SCAN),
    ("safety_identifier", Treat.SCAN),
    ("prompt_cache_key", Treat.SCAN),
    ("metadata/**", Treat.ANY),
]

CHAT_ANSWER: list[tuple[str, Treat]] = [
    ("choices[].message.content", Treat.SCAN),
    ("choices[].message.refusal", Treat.SCAN),
    ("choices[].message.reasoning_content", Treat.SCAN),
    ("choices[].message.reasoning", Treat.SCAN),
    ("choices[].message.reasoning_details/**", Treat.ANY),
    ("choices[].message.tool_calls[].function.arguments", Treat.TOOL),
    ("choices[].message.tool_calls[].custom.input", Treat.TOOL),
    ("choices[].message.function_call.arguments", Treat.TOOL),
    ("choices[].message.annotations/**", Treat.ANY),
    ("choices[].message.audio.data", Treat.OPAQUE),
    ("choices[].message.audio.transcript", Treat.SCAN),
    ("choices[].logprobs/**", Treat.LOGPROBS),
    # stream chunks: the same fields under ``delta`` (events.py streams them per channel)
    ("choices[].delta.content", Treat.SCAN),
    ("choices[].delta.refusal", Treat.SCAN),
    ("choices[].delta.reasoning_content", Treat.SCAN),
    ("choices[].delta.reasoning", Treat.SCAN),
    ("choices[].delta.tool_calls[].function.arguments", Treat.TOOL),
    ("choices[].delta.function_call.arguments", Treat.TOOL),
    ("choices[].delta.audio.data", Treat.OPAQUE),
    ("choices[].delta.audio.transcript", Treat.SCAN),
    ("moderation/**", Treat.KEEP),
    ("metadata/**", Treat.ANY),
    ("obfuscation", Treat.PAD),  # random padding against length side channels (pad.py)
    ("choices[].delta.obfuscation", Treat.PAD),
]

_RESPONSES_REQUEST: list[tuple[str, Treat]] = [
    ("input", Treat.SCAN),
    ("input[]", Treat.SCAN),
    ("input[].<item>", Treat.SCAN),
    ("instructions", Treat.SCAN),
    ("tools[].<tool>", Treat.SCAN),
    ("prompt.variables/**", Treat.ANY),
    ("text.format.description", Treat.SCAN),
    ("text.format.schema/**", Treat.ANY),
    ("tool_choice.tools/**", Treat.KEEP),
    ("user", Treat.SCAN),
    ("safety_identifier", Treat.SCAN),
    ("prompt_cache_key", Treat.SCAN),
    ("metadata/**", Treat.ANY),
]

_RESPONSES_ANSWER: list[tuple[str, Treat]] = [
    ("output[].arguments", Treat.TOOL),
    ("output[].input", Treat.TOOL),  # custom tool call input
    ("output[].<item>", Treat.SCAN),
    ("output_text", Treat.SCAN),
    ("instructions", Treat.SCAN),
    ("instructions[]", Treat.SCAN),
    ("instructions[].<item>", Treat.SCAN),
    ("tools[].<tool>", Treat.SCAN),
    ("prompt.variables/**", Treat.ANY),
    ("text.format.description", Treat.SCAN),
    ("text.format.schema/**", Treat.ANY),
    ("tool_choice.tools/**", Treat.KEEP),
    ("error.message", Treat.SCAN),
    ("error.misalignment/**", Treat.ANY),
    ("incomplete_details/**", Treat.KEEP),
    ("user", Treat.SCAN),
    ("safety_identifier", Treat.SCAN),
    ("prompt_cache_key", Treat.SCAN),
    ("metadata/**", Treat.ANY),
    ("moderation/**", Treat.KEEP),
]

#: Responses-API stream events (``type`` + these fields; ``response.*`` events carry a whole
#: response, ``item`` an output item).
_RESPONSES_EVENTS: list[tuple[str, Treat]] = [
    ("delta", Treat.SCAN),  # every ``*.delta`` text is a stream channel (events.py)
    ("delta.stdout", Treat.SCAN),
    ("delta.stderr", Treat.SCAN),
    ("text", Treat.SCAN),
    ("refusal", Treat.SCAN),
    ("arguments", Treat.TOOL),
    ("input", Treat.TOOL),
    ("code", Treat.SCAN),
    ("transcript", Treat.SCAN),
    ("command", Treat.SCAN),
    ("output[].stdout", Treat.SCAN),
    ("output[].stderr", Treat.SCAN),
    ("message", Treat.SCAN),  # error event
    ("logprobs/**", Treat.LOGPROBS),
    ("part.text", Treat.SCAN),
    ("part.refusal", Treat.SCAN),
    ("part.logprobs/**", Treat.LOGPROBS),
    ("part.annotations/**", Treat.ANY),
    ("annotation/**", Treat.ANY),
    ("partial_image_b64", Treat.OPAQUE),
    ("item.arguments", Treat.TOOL),
    ("item.input", Treat.TOOL),
    ("item.<item>", Treat.SCAN),
    ("obfuscation", Treat.PAD),
]

EMBEDDINGS_REQUEST: list[tuple[str, Treat]] = [
    ("input", Treat.SCAN),
    ("input[]", Treat.SCAN),
    ("input[][]", Treat.OPAQUE),  # token ids
    ("user", Treat.SCAN),
]

EMBEDDINGS_ANSWER: list[tuple[str, Treat]] = [("data/**", Treat.KEEP)]

#: Structure anywhere: identifiers, enums, names chosen by the developer, never user text.
#: (A rule above wins: ``messages[].name`` is a participant's name and is scanned.)
STRUCTURE: list[tuple[str, Treat]] = [
    (f"**.{key}", Treat.STRUCT)
    for key in (
        "id",
        "type",
        "object",
        "role",
        "status",
        "model",
        "name",
        "call_id",
        "tool_call_id",
        "item_id",
        "response_id",
        "previous_response_id",
        "file_id",
        "file_ids[]",
        "container_id",
        "server_label",
        "approval_request_id",
        "namespace",
        "fingerprint",
        "created_by",
        "caller",
        "voice",
        "format",
        "detail",
        "size",
        "quality",
        "output_format",
        "background",
        "finish_reason",
        "system_fingerprint",
        "service_tier",
        "conversation",
        "version",
        "prompt_cache_retention",
        "reasoning",
        "truncation",
        "include[]",
        "modalities[]",
        "encoding_format",
        "tool_choice",
        "tool_names[]",
        "allowed_domains[]",
        "vector_store_ids[]",
        "skill_id",
        "tunnel_id",
        "mode",
        "comparison_response_id",
        "continuation_id",
        "working_directory",
        "param",
        "code",
        "error_type",
        "review_target",
        "acknowledged_safety_checks[].id",
        "pending_safety_checks[].id",
        "pending_safety_checks[].code",
        "acknowledged_safety_checks[].code",
        "categories[]",
        "input_transformations[].id",
        "usage",
        "text.verbosity",
        "effort",
        "domain_secrets[].domain",
        "domain_secrets[].name",
        "svg_usage",
        "moderation_details",
        "caller_id",
        "allowed_tools[]",
        "container",
    )
]


def _expand(rows: list[tuple[str, Treat]]) -> list[tuple[str, Treat]]:
    """``x.<item>`` / ``x.<tool>``: the shared rows of a responses item / tool under ``x``."""
    out: list[tuple[str, Treat]] = []
    for pattern, treat in rows:
        if pattern.endswith(".<item>"):
            out += [(f"{pattern[:-7]}.{p}", t) for p, t in _ITEM_FIELDS]
        elif pattern.endswith(".<tool>"):
            out += [(f"{pattern[:-7]}.{p}", t) for p, t in _TOOL_FIELDS]
        else:
            out.append((pattern, treat))
    return out


RESPONSES_REQUEST = _expand(_RESPONSES_REQUEST)
RESPONSES_ANSWER = _expand(_RESPONSES_ANSWER)
RESPONSES_EVENTS = _expand(_RESPONSES_EVENTS)

TABLES: dict[tuple[str, str], list[tuple[str, Treat]]] = {
    ("chat.completions", "request"): CHAT_REQUEST,
    ("chat.completions", "answer"): CHAT_ANSWER,
    ("responses", "request"): RESPONSES_REQUEST,
    ("responses", "answer"): RESPONSES_ANSWER,
    ("responses", "events"): RESPONSES_EVENTS,
    ("embeddings", "request"): EMBEDDINGS_REQUEST,
    ("embeddings", "answer"): EMBEDDINGS_ANSWER,
}


SECTIONS: list[tuple[str, list[tuple[str, Treat]]]] = [
    ("chat request", CHAT_REQUEST),
    ("chat answer (and `delta` in chunks)", CHAT_ANSWER),
    ("responses request", _RESPONSES_REQUEST),
    ("responses answer", _RESPONSES_ANSWER),
    ("responses stream event", _RESPONSES_EVENTS),
    ("responses `<item>` (input, output, event item)", _ITEM_FIELDS),
    ("responses `<tool>`", _TOOL_FIELDS),
    ("embeddings request", EMBEDDINGS_REQUEST),
    ("embeddings answer", EMBEDDINGS_ANSWER),
]
