"""The built-in ``mock`` provider: a deterministic, well-behaved OpenAI model with no network.

It exists so that ``make run``, demos, the reference orchestrator, the Agents SDK's tool loop
and tests work offline, and so that benchmarks measure the gateway rather than a model. The
same generator also backs the fake OpenAI server in ``tests/fake_openai.py``.

Rules (identical on chat completions and the Responses API):

* **Text.** The answer is ``"Echo: <last user message>"``. Once tool results have arrived
  after the last user message (and no requested tool is still pending) it summarises them
  instead: ``"Done. <tool> returned: <output> ..."`` (each output quoted up to 300 chars).
  With a JSON output format (``response_format`` / ``text.format``) the answer is a JSON
  document valid against the schema (``{"answer": ...}`` for ``json_object``).
* **Tools.** ``tool_choice``: ``none`` → text; ``{"type": "function", ...name}`` → always
  that tool; ``required`` → the requested tools, or the first tool offered; ``auto`` (the
  default when tools are given) → the tools the last user message asks for, skipping those
  already called since that message; when none is left, text. A message asks for a tool when
  it contains the tool's name, or all meaningful words of the name ("look up order 7" →
  ``lookup_order``); failing that, the tools matching most words of their names ("transfer"
  → ``transfer_funds``, ties broken by words of their descriptions); failing that, most words
  of their descriptions. Tools are called in the order the message mentions them: all at
  once, or one per answer when ``parallel_tool_calls`` is false. After 8 tool rounds without
  a new user message the mock answers in text. ``allowed_tools`` choices restrict the tools
  considered. The summary names each result's tool through its ``tool_call_id``.
* **Arguments** are valid against the tool's ``parameters`` schema: required properties (all
  properties when the schema has no ``required``), filled by name and type from the message
  (emails, URLs, ids like ``ORD-1001``, money amounts, numbers, capitalised names, quoted
  strings, the message itself for ``query``-like fields; redaction placeholders such as
  ``<EMAIL_ADDRESS_1>`` count as emails, so the gateway can restore them), else ``enum``'s first value,
  ``default``, ``minimum``, ``false``, ``1``; ``$ref``/``anyOf``/``allOf`` are followed. Any JSON
  schema gets a call, never an error; what it can cost is bounded per answer (``wardgate_mock.budget``),
  and a ``pattern`` is checked by a linear-time matcher, never by ``re`` (``wardgate_mock.regex``).
* **Directives** in the last user message force behaviour (and are removed from the text the
  mock reads): ``[[mock:tool=NAME args={json}]]`` calls NAME with exactly those arguments
  (``args=`` may be omitted: then they are generated), even if NAME is not offered or
  ``tool_choice`` is ``none``; several such directives are several calls (parallel or one per
  answer). A directed call is not repeated once made since the user message.
  ``[[mock:text=...]]`` makes the text answer exactly ``...`` (after any directed calls).
* **Usage.** Prompt tokens = per turn ``len(utf8)//4 + 1`` (+ the same per tool definition);
  completion tokens likewise for the text or each call's name and arguments. A text longer
  than ``max_tokens`` / ``max_completion_tokens`` / ``max_output_tokens`` is cut with
  ``finish_reason: "length"`` (Responses: ``status: "incomplete"``).
* **Ids** (``chatcmpl-``, ``resp_``, ``msg_``, ``call_``) derive from a hash of the
  conversation (and the ``x-run-id`` header when sent), so the same conversation always gets
  the same answer; ``created`` is the wall clock.
* **Embeddings**: unit vectors from a hash of each input, 8 dimensions unless ``dimensions``
  says otherwise; ``encoding_format`` ``float`` or ``base64`` (little-endian float32).
* **Errors**: a malformed request gets ``status=400`` with an OpenAI-shaped error body, as a
  real upstream would answer; the provider never raises for it.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import orjson

from gateway.call import Endpoint, ModelResponse
from gateway.providers.base import UpstreamRequest
from gateway.sse import EventBatches, LastBatch, SSEEvent
from wardgate_mock.chat import chat_body, chat_events
from wardgate_mock.conversation import MockRequestError, from_chat, from_responses
from wardgate_mock.embeddings import embeddings_body
from wardgate_mock.planner import MockOverrides, Plan, plan
from wardgate_mock.responses import response_object, responses_events

__all__ = ["MockAnswer", "MockOverrides", "MockProvider", "generate"]

_JSON_HEADERS = {"content-type": "application/json"}
_SSE_HEADERS = {"content-type": "text/event-stream"}


@dataclass(slots=True)
class MockAnswer:
    """A generated answer: a JSON body (``json``) or the events of a stream (``events``)."""

    status: int
    json: Any = None
    events: list[SSEEvent] | None = None
    plan: Plan | None = None


def error_body(message: str, param: str | None, status: int = 400) -> dict[str, Any]:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": None}}


def generate(
    endpoint: Endpoint,
    body: dict[str, Any],
    *,
    stream: bool = False,
    overrides: MockOverrides | None = None,
    salt: str = "",
    created: int | None = None,
) -> MockAnswer:
    """The mock's answer to one request body (no I/O; ``created`` defaults to the wall clock)."""
    if not isinstance(body, dict):
        return MockAnswer(400, error_body("The request body must be a JSON object.", None))
    when = int(time.time()) if created is None else created
    try:
        if endpoint is Endpoint.EMBEDDINGS:
            return MockAnswer(200, embeddings_body(body, overrides.usage if overrides else None))
        if endpoint is Endpoint.CHAT:
            conv = from_chat(body)
            p = plan(conv, overrides, salt)
            if stream:
                options = body.get("stream_options")
                include_usage = isinstance(options, dict) and options.get("include_usage") is True
                return MockAnswer(200, events=chat_events(conv.model, p, when, include_usage), plan=p)
            return MockAnswer(200, chat_body(conv.model, p, when), plan=p)
        conv = from_responses(body)
        p = plan(conv, overrides, salt)
        if stream:
            return MockAnswer(200, events=responses_events(body, conv, p, when), plan=p)
        return MockAnswer(200, response_object(body, conv, p, when, final=True), plan=p)
    except MockRequestError as exc:
        return MockAnswer(400, error_body(str(exc), exc.param))


async def _replay(events: list[SSEEvent], delay_s: float) -> EventBatches:
    """All events in one batch (one network read), or one by one with a delay (a typing model)."""
    if not delay_s:
        if events:
            yield LastBatch(events)
        return
    for event in events:
        await asyncio.sleep(delay_s)
        yield [event]


class MockProvider:
    """The ``Provider`` seam over ``generate``: answers at once, never touches the network.

    ``chunk_delay_s`` spaces stream events out (for demos that should look like a model
    typing); ``overrides`` forces behaviour for every answer (tests).
    """

    def __init__(
        self, name: str = "mock", *, chunk_delay_s: float = 0.0, overrides: MockOverrides | None = None
    ):
        self.name = name
        self.chunk_delay_s = chunk_delay_s
        self.overrides = overrides

    async def send(self, request: UpstreamRequest) -> ModelResponse:
        stream = request.stream or request.body.get("stream") is True
        salt = request.headers.get("x-run-id") or request.headers.get("X-Run-Id") or ""
        answer = generate(request.endpoint, request.body, stream=stream, overrides=self.overrides, salt=salt)
        if answer.events is not None:
            return ModelResponse(
                status=answer.status,
                headers=dict(_SSE_HEADERS),
                events=_replay(answer.events, self.chunk_delay_s),
            )
        return ModelResponse(
            status=answer.status,
            headers=dict(_JSON_HEADERS),
            body=orjson.dumps(answer.json),
            json=answer.json,
        )

    async def close(self) -> None:
        """Nothing to release: the mock holds no connections."""
