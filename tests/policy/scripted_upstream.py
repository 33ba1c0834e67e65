"""A model provider whose next answers are given verbatim: a JSON body, or SSE events.

The fake OpenAI server (tests/fake_openai.py) answers like a well-behaved model; an attacker
controls the *shape* of an answer too: a tool name split over twenty deltas, a legacy
``function_call``, a built-in ``local_shell_call`` item. This server replays exactly what a
test scripted (one answer per request, in order) and records what the gateway sent it.

    with ScriptedUpstream() as up:
        up.answer({"choices": [...]})                 # the next non-stream answer
        up.stream([{"choices": [...]}, ..., "[DONE]"])  # the next stream: one event each
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from typing import Any

import orjson
from aiohttp import web

from tests.harness import free_socket


class ScriptedUpstream:
    def __init__(self) -> None:
        self._answers: deque[tuple[str, Any]] = deque()
        self._lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None
        self._sock = free_socket()
        self.base_url = f"http://127.0.0.1:{self._sock.getsockname()[1]}/v1"

    def answer(self, body: dict[str, Any]) -> None:
        with self._lock:
            self._answers.append(("json", body))

    def stream(self, events: list[Any]) -> None:
        """SSE events: a dict is sent as JSON data (with ``event:`` its ``type``, if any)."""
        with self._lock:
            self._answers.append(("sse", events))

    def reset(self) -> None:
        with self._lock:
            self._answers.clear()
            self.requests.clear()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        with self._lock:
            self.requests.append(body)
            kind, script = self._answers.popleft() if self._answers else ("json", None)
        if script is None:
            return web.json_response(
                {"error": {"message": "nothing scripted", "type": "server_error"}}, status=500
            )
        if kind == "json":
            return web.Response(body=orjson.dumps(script), content_type="application/json")
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for event in script:
            if event == "[DONE]":
                await resp.write(b"data: [DONE]\n\n")
                continue
            head = (
                f"event: {event['type']}\n".encode() if isinstance(event, dict) and "type" in event else b""
            )
            await resp.write(head + b"data: " + orjson.dumps(event) + b"\n\n")
        await resp.write_eof()
        return resp

    def start(self) -> ScriptedUpstream:
        started = threading.Event()

        def run() -> None:
            loop = self._loop = asyncio.new_event_loop()
            app = web.Application()
            app.router.add_post("/v1/chat/completions", self._handle)
            app.router.add_post("/v1/responses", self._handle)
            self._runner = web.AppRunner(app, access_log=None)
            loop.run_until_complete(self._runner.setup())
            loop.run_until_complete(web.SockSite(self._runner, self._sock).start())
            started.set()
            loop.run_forever()
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        started.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    def __enter__(self) -> ScriptedUpstream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---- answers in each API's shape ---------------------------------------------------------------


def chat_answer(calls: list[tuple[str, str]], *, legacy: bool = False) -> dict[str, Any]:
    """A chat completion calling ``(name, arguments JSON)`` each (``legacy``: ``function_call``)."""
    message: dict[str, Any] = {"role": "assistant", "content": None}
    if legacy:
        name, args = calls[0]
        message["function_call"] = {"name": name, "arguments": args}
    else:
        message["tool_calls"] = [
            {"id": f"call_{i}", "type": "function", "function": {"name": n, "arguments": a}}
            for i, (n, a) in enumerate(calls)
        ]
    return {
        "id": "chatcmpl-x",
        "object": "chat.completion",
        "created": 1,
        "model": "gpt-test",
        "choices": [
            {"index": 0, "message": message, "finish_reason": "function_call" if legacy else "tool_calls"}
        ],
        "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
    }


def chat_stream(calls: list[tuple[str, str]], *, piece: int = 1, legacy: bool = False) -> list[Any]:
    """Chat chunks with every name and arguments split into ``piece``-character deltas."""

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {
            "id": "chatcmpl-x",
            "object": "chat.completion.chunk",
            "created": 1,
            "model": "gpt-test",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }

    events: list[Any] = [chunk({"role": "assistant", "content": ""})]
    for i, (name, args) in enumerate(calls):
        for n, start in enumerate(range(0, len(name), piece)):
            part = {"name": name[start : start + piece]}
            if legacy:
                events.append(chunk({"function_call": {**part, "arguments": ""}}))
            else:
                head = {"id": f"call_{i}", "type": "function"} if n == 0 else {}
                events.append(
                    chunk({"tool_calls": [{"index": i, **head, "function": {**part, "arguments": ""}}]})
                )
        for start in range(0, len(args), piece):
            part = {"arguments": args[start : start + piece]}
            events.append(
                chunk({"function_call": part} if legacy else {"tool_calls": [{"index": i, "function": part}]})
            )
    events.append(chunk({}, "function_call" if legacy else "tool_calls"))
    events.append("[DONE]")
    return events


def responses_item(name: str, args: str, index: int = 0) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": f"fc_{index}",
        "call_id": f"call_{index}",
        "name": name,
        "arguments": args,
        "status": "completed",
    }


def responses_answer(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": "resp_x",
        "object": "response",
        "created_at": 1,
        "model": "gpt-test",
        "status": "completed",
        "output": items,
        "usage": {"input_tokens": 5, "output_tokens": 5, "total_tokens": 10},
    }


def responses_stream(items: list[dict[str, Any]], *, piece: int = 1) -> list[Any]:
    """Responses events: each item added empty, its arguments in ``piece``-character deltas,
    then done; the terminal event carries the same items."""
    seq = iter(range(10_000))
    events: list[Any] = [
        {
            "type": "response.created",
            "sequence_number": next(seq),
            "response": {**responses_answer([]), "status": "in_progress"},
        }
    ]
    for index, item in enumerate(items):
        args = item.get("arguments", "")
        added = {**item, "arguments": ""} if "arguments" in item else item
        events.append(
            {
                "type": "response.output_item.added",
                "sequence_number": next(seq),
                "output_index": index,
                "item": {**added, "status": "in_progress"},
            }
        )
        for start in range(0, len(args), piece):
            events.append(
                {
                    "type": "response.function_call_arguments.delta",
                    "sequence_number": next(seq),
                    "item_id": item.get("id"),
                    "output_index": index,
                    "delta": args[start : start + piece],
                }
            )
        events.append(
            {
                "type": "response.output_item.done",
                "sequence_number": next(seq),
                "output_index": index,
                "item": item,
            }
        )
    events.append(
        {"type": "response.completed", "sequence_number": next(seq), "response": responses_answer(items)}
    )
    return events
