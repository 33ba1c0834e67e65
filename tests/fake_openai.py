"""A real local HTTP server that behaves like the OpenAI API, and misbehaves on request.

Tests and benchmarks of the gateway need an upstream they control: one that answers like
OpenAI (the answers come from the built-in mock provider's generator, so there is one model
of "a well-behaved model" in the repo), records exactly what the gateway sent it, and fails
in the ways real upstreams fail. It runs on aiohttp in a background thread with its own event
loop, so sync and async tests alike can point a gateway (or the openai SDK) at ``base_url``.

    with FakeOpenAI() as fake:
        client = openai.OpenAI(base_url=fake.base_url, api_key="sk-x")
        fake.fault("429", times=1, retry_after_ms="20")
        fake.usage(100, 20)                      # exact token counts in every answer
        fake.script_tool_call("issue_refund", {"order_id": "A1", "amount": 5})
        ...
        assert fake.requests[-1].headers["authorization"] == "Bearer sk-x"

Faults (``fake.fault(kind, times=None|N, path=None, **params)``; ``times=None`` = always):

- ``slow``: ``delay_s`` before answering (default 1 s), ``chunk_delay_s`` between stream events;
- ``status``: ``status`` (default 500) with an OpenAI-shaped error body, ``message``, ``code``,
  ``param``, ``headers``; ``echo_auth=True`` appends the request's ``Authorization`` header to the
  message (a hostile or careless provider quoting the gateway's key back);
- ``429``: ``retry_after`` / ``retry_after_ms`` header values (None omits one);
- ``invalid_json``: 200 with a broken body (broken ``data:`` for a stream);
- ``cut_stream``: ``after`` events (default 2), then the connection is dropped (a non-stream
  answer is cut halfway through its declared length);
- ``broken_sse``: 200 ``text/event-stream`` with garbage instead of events;
- ``hang``: never answers (for a stream: after ``after`` events), until the client leaves;
- ``usage``: ``prompt_tokens`` / ``completion_tokens`` in every answer (also ``fake.usage``);
- ``stream_error``: a stream that sends ``after`` events (default 2), then the provider's own
  error event (chat ``data: {"error": {...}}``, responses ``event: error``, or with
  ``failed=True`` a ``response.failed``) with ``message``, ``code`` and ``echo_auth`` as for
  ``status``, and ends;
- ``duplicate_keys``: the answer repeats a top-level ``key`` (default ``object``; ``type`` for
  responses stream events) with the value ``"duplicate"``; a stream does so in event ``at``
  (default -1: the last JSON event; chat's last one is the usage chunk).

One failure applies per request, alongside at most one ``usage`` and one scripted answer
(``script_tool_call`` / ``script_text``, or ``script_answer`` for an exact body or events).
Each recorded request notes whether the client
disconnected before the answer completed (``disconnected``), e.g. a gateway cancelling.

``fast=True`` is for benchmarks: a bare httptools server (``tests/fake_openai_fast.py``) answers
every request with a pre-rendered body; nothing is recorded and faults do not apply.
``python tests/fake_openai.py --port N [--fast] [--latency-ms M]`` serves either in the foreground
(the command line lives in that module too).
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

if __package__ in (None, ""):  # run as a script: make the repo importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.call import Endpoint
from tests.fake_openai_fast import FastServer
from wardgate_mock import MockOverrides, error_body, generate

DEFAULT_MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "mock-chat", "mock-embedding")
FAILURES = frozenset(
    {
        "slow",
        "status",
        "429",
        "invalid_json",
        "cut_stream",
        "broken_sse",
        "hang",
        "stream_error",
        "duplicate_keys",
    }
)
_PATHS = {
    "/v1/chat/completions": Endpoint.CHAT,
    "/v1/responses": Endpoint.RESPONSES,
    "/v1/embeddings": Endpoint.EMBEDDINGS,
}
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "invalid_request_error",
    409: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_exceeded",
}
_GROUPS = {"usage": "usage", "tool_call": "script", "text": "script", "raw": "script"}
_BROKEN_SSE = b"<html><body><h1>502 Bad Gateway</h1></body></html>\nthis is not an event stream"


@dataclass(slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    json: Any
    body: bytes
    at: float = field(default_factory=time.time)
    #: Set when the client went away before the answer was complete (e.g. the gateway cancelled).
    disconnected: bool = False
    completed: bool = False


@dataclass(slots=True)
class Fault:
    kind: str
    times: int | None
    path: str | None
    params: dict[str, Any]


class FakeOpenAI:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        fast: bool = False,
        api_key: str | None = None,
        models: tuple[str, ...] = DEFAULT_MODELS,
        latency_s: float = 0.0,
    ) -> None:
        self.host, self.port, self.fast, self.api_key, self.models = host, port, fast, api_key, models
        #: Added before every model answer (a stand-in for model latency in benchmarks).
        self.latency_s = latency_s
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._count = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._server: asyncio.AbstractServer | None = None
        self._fast: FastServer | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        """Serve from a background thread; binds a free port unless one was given."""
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="fake-openai", daemon=True)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.serve(), loop).result(timeout=10)
        return self

    async def serve(self) -> None:
        """Start serving on the running loop (used by ``start`` and by the script mode)."""
        self._stopping = asyncio.Event()
        if self.fast:
            self._fast = FastServer(self.models, self.latency_s)
            self._server = await self._fast.listen(self.host, self.port)
            self.port = self._server.sockets[0].getsockname()[1]
            return
        app = web.Application(client_max_size=64 << 20)
        app.router.add_post("/v1/{tail:.*}", self._handle)
        app.router.add_get("/v1/models", self._models)
        app.router.add_get("/v1/models/{model}", self._model)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        self._runner = web.AppRunner(app, access_log=None, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _shutdown(self) -> None:
        if self._stopping is not None:
            self._stopping.set()
        if self._server is not None:
            self._server.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        asyncio.run_coroutine_threadsafe(self._shutdown(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
        self._loop = self._thread = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- what tests read and set -----------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def request_count(self) -> int:
        """Requests answered on the model endpoints (counted in fast mode too)."""
        with self._lock:
            return self._count + (self._fast.count if self._fast is not None else 0)

    @property
    def last_request(self) -> RecordedRequest | None:
        with self._lock:
            return self._requests[-1] if self._requests else None

    def reset(self) -> None:
        """Forget recorded requests and clear every fault and script."""
        with self._lock:
            self._requests.clear()
            self._faults.clear()
            self._count = 0
            if self._fast is not None:
                self._fast.count = 0

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def fault(self, kind: str, times: int | None = None, *, path: str | None = None, **params: Any) -> None:
        """Misbehave on the next ``times`` requests (always when None), optionally on one path."""
        if kind not in FAILURES and kind not in _GROUPS:
            raise ValueError(f"unknown fault kind {kind!r}")
        with self._lock:
            self._faults.append(Fault(kind, times, path, params))

    def usage(self, prompt_tokens: int, completion_tokens: int, times: int | None = None) -> None:
        """Answer with exactly these token counts (so budget tests know the cost)."""
        self.fault("usage", times, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens)

    def script_tool_call(self, name: str, args: dict[str, Any] | str, times: int | None = 1) -> None:
        """Answer the next chat/responses requests with a call to ``name`` with ``args`` (a str:
        the arguments string exactly, e.g. JSON no serialiser would write)."""
        self.fault("tool_call", times, calls=[(name, args)])

    def script_text(self, text: str, times: int | None = 1) -> None:
        self.fault("text", times, text=text)

    def script_answer(
        self,
        body: Any = None,
        *,
        events: list[Any] | None = None,
        times: int | None = 1,
        done: bool = True,
        delay_s: float = 0.0,
    ) -> None:
        """Answer the next requests with exactly ``body`` (non-stream) or ``events`` (stream):
        each dict becomes one ``data:`` line (responses events also get ``event: <type>``),
        ``bytes`` are written as they are (a whole frame), then ``data: [DONE]`` unless
        ``done=False``, ``delay_s`` apart. For answers the built-in mock cannot write (logprobs,
        reasoning fields, annotations, odd provider fields) and for upstreams that misbehave."""
        self.fault("raw", times, body=body, events=events, done=done, delay_s=delay_s)

    def wait_for_requests(self, n: int, timeout_s: float = 5.0) -> list[RecordedRequest]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if len(self.requests) >= n:
                break
            time.sleep(0.005)
        return self.requests

    def _take(self, path: str) -> dict[str, Fault]:
        """Consume at most one fault of each group (failure, usage, script) for this request."""
        taken: dict[str, Fault] = {}
        with self._lock:
            for f in list(self._faults):
                group = _GROUPS.get(f.kind, "failure")
                if group in taken or (f.path is not None and f.path != path):
                    continue
                taken[group] = f
                if f.times is not None:
                    f.times -= 1
                    if f.times <= 0:
                        self._faults.remove(f)
        return taken

    # ---- HTTP ------------------------------------------------------------------------------

    async def _models(self, request: web.Request) -> web.Response:
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "fake-openai"}
            for m in self.models
        ]
        return _json(200, {"object": "list", "data": data})

    async def _model(self, request: web.Request) -> web.Response:
        name = request.match_info["model"]
        if name not in self.models:
            return _json(404, _error(404, f"The model '{name}' does not exist", code="model_not_found"))
        return _json(200, {"id": name, "object": "model", "created": 1700000000, "owned_by": "fake-openai"})

    async def _not_found(self, request: web.Request) -> web.Response:
        return _json(404, _error(404, f"Invalid URL ({request.method} {request.path})"))

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        endpoint = _PATHS.get(request.path)
        with self._lock:
            self._count += 1
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        try:
            body = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            body = None
        record = RecordedRequest(
            request.method, request.path, {k.lower(): v for k, v in request.headers.items()}, body, raw
        )
        with self._lock:
            self._requests.append(record)
        try:
            response = await self._answer(request, record, endpoint)
            record.completed = True
            return response
        except (asyncio.CancelledError, ConnectionError):
            record.disconnected = True
            raise

    async def _answer(
        self, request: web.Request, record: RecordedRequest, endpoint: Endpoint | None
    ) -> web.StreamResponse:
        if endpoint is None:
            return await self._not_found(request)
        if self.api_key is not None and record.headers.get("authorization") != f"Bearer {self.api_key}":
            return _json(401, _error(401, "Incorrect API key provided.", code="invalid_api_key"))
        if not isinstance(record.json, dict):
            return _json(400, _error(400, "We could not parse the JSON body of your request."))
        faults = self._take(request.path)
        stream = endpoint is not Endpoint.EMBEDDINGS and record.json.get("stream") is True
        failure = faults.get("failure")
        chunk_delay = 0.0
        if failure is not None:
            done = await self._fail(request, failure, stream)
            if done is not None:
                return done
            chunk_delay = float(failure.params.get("chunk_delay_s", 0.0))
        script = faults.get("script")
        if script is not None and script.kind == "raw":
            return await _raw(request, script.params, stream)
        overrides = _overrides(faults)
        answer = generate(
            endpoint, record.json, stream=stream, overrides=overrides, salt=record.headers.get("x-run-id", "")
        )
        if answer.events is None:
            if failure is not None and failure.kind == "cut_stream":
                return await _cut_body(request, orjson.dumps(answer.json))
            if failure is not None and failure.kind == "duplicate_keys":
                key = str(failure.params.get("key", "object"))
                return web.Response(
                    status=answer.status,
                    body=_repeat_key(orjson.dumps(answer.json), key),
                    content_type="application/json",
                )
            return _json(answer.status, answer.json)
        resp = await _open_stream(request)
        cut_after = (
            int(failure.params.get("after", 2))
            if failure and failure.kind in ("cut_stream", "hang", "stream_error")
            else None
        )
        events = list(answer.events)
        if failure is not None and failure.kind == "duplicate_keys":
            _repeat_key_in_event(events, endpoint, failure.params)
        for i, event in enumerate(events):
            if cut_after is not None and i == cut_after:
                if failure is not None and failure.kind == "hang":
                    await self._hang()
                if failure is not None and failure.kind == "stream_error":
                    await resp.write(_error_event(endpoint, failure.params, record.headers))
                    await resp.write_eof()
                    return resp
                request.transport.abort()  # type: ignore[union-attr]
                return resp
            if chunk_delay:
                await asyncio.sleep(chunk_delay)
            await resp.write(event.raw)
        await resp.write_eof()
        return resp

    async def _fail(self, request: web.Request, f: Fault, stream: bool) -> web.StreamResponse | None:
        """Answer according to a failure fault, or return None to answer normally."""
        p = f.params
        if f.kind == "slow":
            await asyncio.sleep(float(p.get("delay_s", 0.0 if "chunk_delay_s" in p else 1.0)))
            return None
        if f.kind == "status":
            status = int(p.get("status", 500))
            message = p.get("message", f"The server had an error ({status}).")
            if p.get("echo_auth"):
                message += f" (you sent: {request.headers.get('authorization')})"
            body = _error(status, message, code=p.get("code"))
            body["error"]["param"] = p.get("param")
            return _json(status, body, p.get("headers"))
        if f.kind == "429":
            headers = {"x-ratelimit-remaining-requests": "0", **(p.get("headers") or {})}
            for name, default in (("retry-after", "1"), ("retry-after-ms", "100")):
                value = p.get(name.replace("-", "_"), default)
                if value is not None:
                    headers[name] = str(value)
            message = p.get("message", "Rate limit reached for requests. Please try again later.")
            return _json(429, _error(429, message, code="rate_limit_exceeded"), headers)
        if f.kind == "invalid_json":
            if stream:
                resp = await _open_stream(request)
                await resp.write(b'data: {"id": "chatcmpl-broken", "choices": [\n\n')
                await resp.write_eof()
                return resp
            return web.Response(
                status=200,
                body=b'{"id": "chatcmpl-broken", "object": "chat.completion", "choices": [{',
                content_type="application/json",
            )
        if f.kind == "broken_sse":
            resp = await _open_stream(request)
            await resp.write(_BROKEN_SSE)
            await resp.write_eof()
            return resp
        if f.kind == "hang" and not stream:
            await self._hang()
            return _json(503, _error(503, "The fake upstream is shutting down."))
        return None  # cut_stream, and hang on a stream, act while streaming

    async def _hang(self) -> None:
        if self._stopping is not None:
            await self._stopping.wait()


def _error(status: int, message: str, *, code: str | None = None) -> dict[str, Any]:
    body = error_body(message, None, status)
    body["error"]["type"] = _ERROR_TYPES.get(status, "server_error")
    body["error"]["code"] = code
    return body


def _repeat_key(body: bytes, key: str) -> bytes:
    """``body`` (a JSON object) with ``key`` repeated at its top level, first as "duplicate"."""
    return b"{" + orjson.dumps(key) + b':"duplicate",' + body[1:]


def _repeat_key_in_event(events: list[Any], endpoint: Endpoint, params: dict[str, Any]) -> None:
    from gateway.sse import SSEEvent

    json_events = [i for i, e in enumerate(events) if e.data.startswith(b"{")]
    index = json_events[int(params.get("at", -1))]
    event = events[index]
    key = str(params.get("key", "type" if endpoint is Endpoint.RESPONSES else "object"))
    data = _repeat_key(event.data, key)
    head = b"event: " + event.event.encode() + b"\n" if event.event else b""
    events[index] = SSEEvent(head + b"data: " + data + b"\n\n", event.event, data)


def _error_event(endpoint: Endpoint | None, params: dict[str, Any], headers: dict[str, str]) -> bytes:
    """The provider's own error event inside a stream, in the shape of the endpoint."""
    message = str(params.get("message", "The server had an error while processing your request."))
    if params.get("echo_auth"):
        message += f" (you sent: {headers.get('authorization')})"
    code = params.get("code", "server_error")
    if endpoint is Endpoint.RESPONSES and params.get("failed"):
        response = {
            "id": "resp_failed",
            "object": "response",
            "status": "failed",
            "output": [],
            "error": {"code": code, "message": message},
        }
        payload = {"type": "response.failed", "response": response, "sequence_number": 99}
        return b"event: response.failed\ndata: " + orjson.dumps(payload) + b"\n\n"
    if endpoint is Endpoint.RESPONSES:
        payload = {"type": "error", "code": code, "message": message, "param": None, "sequence_number": 99}
        return b"event: error\ndata: " + orjson.dumps(payload) + b"\n\n"
    payload = {"error": {"message": message, "type": "server_error", "code": code, "param": None}}
    return b"data: " + orjson.dumps(payload) + b"\n\n"


def _json(status: int, obj: Any, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        status=status, body=orjson.dumps(obj), content_type="application/json", headers=headers
    )


def _overrides(faults: dict[str, Fault]) -> MockOverrides | None:
    usage, script = faults.get("usage"), faults.get("script")
    if usage is None and script is None:
        return None
    o = MockOverrides()
    if usage is not None:
        o.usage = (int(usage.params["prompt_tokens"]), int(usage.params["completion_tokens"]))
    if script is not None and script.kind == "tool_call":
        o.tool_calls = list(script.params["calls"])
    elif script is not None:
        o.text = str(script.params["text"])
    return o


async def _raw(request: web.Request, params: dict[str, Any], stream: bool) -> web.StreamResponse:
    if not stream or params.get("events") is None:
        return _json(200, params.get("body"))
    resp = await _open_stream(request)
    for event in params["events"]:
        if params.get("delay_s"):
            await asyncio.sleep(params["delay_s"])
        if isinstance(event, bytes):  # a whole frame, byte for byte (escaped keys, odd framing)
            await resp.write(event)
            continue
        head = f"event: {event['type']}\n".encode() if isinstance(event, dict) and "type" in event else b""
        await resp.write(head + b"data: " + orjson.dumps(event) + b"\n\n")
    if params.get("done", True):
        await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


async def _open_stream(request: web.Request) -> web.StreamResponse:
    resp = web.StreamResponse(
        status=200, headers={"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache"}
    )
    await resp.prepare(request)
    return resp


async def _cut_body(request: web.Request, body: bytes) -> web.StreamResponse:
    resp = web.StreamResponse(status=200, headers={"content-type": "application/json"})
    resp.content_length = len(body)
    await resp.prepare(request)
    await resp.write(body[: len(body) // 2])
    request.transport.abort()  # type: ignore[union-attr]
    return resp


if __name__ == "__main__":
    from tests.fake_openai_fast import main

    main()
