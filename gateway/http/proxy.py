"""The OpenAI-compatible endpoints: one raw ASGI app per endpoint, translating HTTP.

The call itself is owned by its ``CallScope`` (``gateway.pipeline``): it runs the phases
and finishes the call exactly once, whichever way it ends; this module reads the request,
sends the answer or the error, and marks where the shutdown drain may cut the call.

Intake: the key (a header) is checked first, then the body is read (bounded) and parsed; an
unknown caller never costs a body read or a parse.

Non-stream: request phase → response phase → finish (settle, audit) → send. The answer is
sent only after ``finish`` when a finish hook gates it (``Stage.gates_answer``: an audit
store, so an event that cannot be made durable can still turn the answer into a 503). When
none does, the answer goes first and ``finish`` (settle, metrics) runs right after it. What
finish hooks deferred (``call.deferred``: the settle's reply) is awaited last, after the
answer, whatever path the call took.

Stream: the first event is produced before the status line goes out, so anything that fails
before it (upstream error, broken SSE, a guard) is still a proper HTTP error. After that,
errors become an SSE ``error`` event. The terminal event (``[DONE]`` / ``response.completed``)
is held until ``finish`` has run (when a finish hook gates the answer). A client that
disconnects cancels the relay, which closes the upstream stream; ``finish`` still runs (the
reservation is settled, the call is audited).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import random
from collections.abc import Sequence

import orjson

from gateway.call import Call, Endpoint, ModelResponse
from gateway.context import AppContext
from gateway.errors import GatewayError, InternalError
from gateway.http.asgi import (
    ClientDisconnected,
    Receive,
    Scope,
    Send,
    encode_headers,
    header_dict,
    read_body,
    send_bytes,
    send_error,
    until_disconnect,
)
from gateway.http.drain import BODY, REQUEST, STREAM, Drain, shutting_down
from gateway.http.validate import MAX_EMBEDDING_VALUES, MAX_VALUES, check_body, parse_body
from gateway.identity import invalid_id, valid_id
from gateway.keys.stage import authenticate_key
from gateway.logs import CURRENT_CALL
from gateway.pipeline import CallScope, Pipeline
from gateway.sse import EventBatches, SSEEvent, is_last

log = logging.getLogger("wardgate.proxy")

_TERMINAL_EVENTS = frozenset({"response.completed", "response.failed", "response.incomplete"})
#: How long a stream runs before a task starts watching for the client's disconnect.
_WATCH_AFTER_S = 0.05


def _pipeline(ctx: AppContext) -> Pipeline:
    """The pipeline the lifespan assembled (uvicorn serves no request before the lifespan ran)."""
    pipeline = ctx.pipeline
    if pipeline is None:
        raise RuntimeError("the gateway's lifespan has not assembled the pipeline")
    return pipeline


#: A body at least this big hands the loop back once between being read and being parsed:
#: joining it and checking it are two stretches of the loop (~0.5 ms each for 3.6 MB).
_BIG_BODY = 256 * 1024


class ProxyEndpoint:
    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        # Request ids only need to be unique, not secret: a PRNG seeded once from the OS
        # costs ~0.3 µs per id where os.urandom costs a syscall (~5-20 µs here) per call.
        self._ids = random.Random(os.urandom(32))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        ctx: AppContext = scope["app"].state.ctx
        headers = header_dict(scope)
        call = Call(
            request_id=_request_id(headers, self._ids),
            endpoint=self.endpoint,
            body={},
            headers=headers,
            traceparent=headers.get("traceparent"),
        )
        call.response_headers["x-request-id"] = call.request_id
        CURRENT_CALL.set(call)  # the JSON log lines' ids (gateway/logs.py); this task only
        drain = ctx.drain
        owner = _pipeline(ctx).scope(call, drain.task())
        drain.enter(owner)
        try:
            async with owner:  # finishes the call once, whichever way it ends
                await self._serve(ctx, owner, receive, send)
        finally:
            drain.leave(owner)

    async def _serve(self, ctx: AppContext, owner: CallScope, receive: Receive, send: Send) -> None:
        """The call as HTTP: read and check the request, run the phases, send the answer or
        the error. ``owner`` finishes the call (once) wherever it ends."""
        call = owner.call
        drain = ctx.drain
        try:
            # The key is in a header: an unknown caller is refused before its body is read
            # (the server drains or drops what it sent), so it never costs a parse.
            call.principal = authenticate_key(ctx.keys, call.headers)
            drain.check(owner, BODY)
            raw = await read_body(call.headers, receive, ctx.settings.server.max_body_bytes)
            if len(raw) > _BIG_BODY:  # other calls' ready I/O goes between joining and checking
                await asyncio.sleep(1e-9)
            owner.region = None
            call.until_disconnect = functools.partial(until_disconnect, receive)
            given = call.headers.get("x-request-id")
            if given and given != call.request_id:  # read first: every client then reads the 400
                raise invalid_id(given, "x-request-id", "X-Request-Id")
            call.body = parse_body(
                raw, MAX_EMBEDDING_VALUES if self.endpoint is Endpoint.EMBEDDINGS else MAX_VALUES
            )
            call.model, call.stream = check_body(self.endpoint, call.body)
            drain.check(owner, REQUEST)
            response = await owner.request()
            owner.region = None
            if response.events is not None:
                call.until_disconnect = None  # the relay's own guard watches from here
                await _stream(owner, response, receive, send, drain)
                return
            await owner.respond(response)
            if owner.gates_answer:
                await owner.finish()
                await _send_answer(send, call, response)
            else:
                await _send_answer(send, call, response)
                await owner.finish_quietly()  # no await in between: settle is issued first
        except asyncio.CancelledError:
            if not owner.fired:
                raise
            # The drain cut the call before its answer: answered and finished like any failure.
            owner.absorb()
            owner.region = None
            error = shutting_down()
            await owner.fail(error)
            await send_error(send, error, call.response_headers)
        except ClientDisconnected:
            owner.region = None
            call.client_disconnected = True
        except GatewayError as exc:
            owner.region = None
            await owner.fail(exc)
            await send_error(send, exc, call.response_headers)
        except Exception as exc:
            owner.region = None
            log.exception("unhandled error", extra={"request_id": call.request_id})
            await owner.fail(exc)
            await send_error(
                send, InternalError("The gateway failed to process the request."), call.response_headers
            )


def _request_id(headers: dict[str, str], ids: random.Random) -> str:
    """The client's id when it is a valid id (it is echoed in a header, logged and audited),
    else a new one; ``_serve`` then refuses the call (400) under that new id."""
    given = headers.get("x-request-id")
    if given and valid_id(given):
        return given
    return f"req_{ids.getrandbits(128):032x}"


async def _send_answer(send: Send, call: Call, response: ModelResponse) -> None:
    body = orjson.dumps(response.json) if response.dirty else response.body
    headers = {**response.headers, **call.response_headers}
    await send_bytes(send, response.status, body, headers)


async def _stream(
    owner: CallScope,
    response: ModelResponse,
    receive: Receive,
    send: Send,
    drain: Drain,
) -> None:
    call = owner.call
    upstream = response.events
    if upstream is None:
        raise InternalError("not a stream")
    try:
        # Read up to the first network read that released something: failures until then
        # are still a proper HTTP error, and its events go out in one write.
        drain.check(owner, STREAM)
        first, ended = await _first_release(owner, upstream)
        owner.region = None
    except (Exception, asyncio.CancelledError) as exc:
        if isinstance(exc, asyncio.CancelledError):
            if not owner.fired:
                raise
            owner.absorb()
            exc = shutting_down()
        owner.region = None
        await _close_upstream(response)
        await owner.fail(exc)
        raise _as_gateway_error(exc) from exc
    headers = {**response.headers, **call.response_headers, "cache-control": "no-cache"}
    await send({"type": "http.response.start", "status": 200, "headers": encode_headers(headers.items())})
    call.first_byte_sent = True
    terminal: list[SSEEvent] = []
    tail: list[bytes] = []
    failure: Exception | None = None
    guard = _DisconnectGuard(receive)
    try:
        drain.check(owner, STREAM)
        tail = await _relay(owner, first, ended, upstream, send, terminal)
    except asyncio.CancelledError:
        if not (guard.fired or owner.fired):
            raise  # a real cancellation, neither the client leaving nor the drain's cut
        if guard.fired:
            guard.absorb()
        if owner.fired:
            owner.absorb()
            failure = shutting_down()
    except Exception as exc:
        failure = exc
    finally:
        owner.region = None
        guard.stop()
    if guard.fired:
        call.client_disconnected = True
        await _close_upstream(response)
        return  # the scope finishes the call
    if failure is not None:
        if owner.fired:  # the provider stops generating (and billing) now, not when the process exits
            await _close_upstream(response)
        if isinstance(failure, GatewayError):
            error = failure
        else:
            log.error("stream failed", exc_info=failure, extra={"request_id": call.request_id})
            error = InternalError("The gateway failed mid-stream.")
        await owner.fail(failure)
        await _send_event(send, error_event(call, error), more=False)
        return
    end = b"".join(e.raw for e in terminal)
    if not owner.gates_answer:
        await send({"type": "http.response.body", "body": b"".join(tail) + end, "more_body": False})
        await owner.finish_quietly()  # no await in between: settle is issued first
        return
    await _write(send, tail)
    try:
        await owner.finish()
    except GatewayError as exc:
        call.error = exc
        await _send_event(send, error_event(call, exc), more=False)
        return
    await send({"type": "http.response.body", "body": end, "more_body": False})


async def _first_release(owner: CallScope, upstream: EventBatches) -> tuple[list[SSEEvent], bool]:
    """The events released for the first network reads that released any, and whether the
    upstream already ended (then nothing has been written yet: it all goes out with the end)."""
    first: list[SSEEvent] = []
    async for batch in upstream:
        await owner.release(batch, first)
        if first and not is_last(batch):
            return first, False
    await owner.end_stream(first)
    return first, True


async def _relay(
    owner: CallScope,
    first: list[SSEEvent],
    ended: bool,
    upstream: EventBatches,
    send: Send,
    terminal: list[SSEEvent],
) -> list[bytes]:
    """Write what the stages release, one write per upstream read, and return what the last
    read released, unwritten: the caller sends it with the end of the response. The terminal
    event is collected into ``terminal`` (held until ``finish`` when a finish hook gates the
    answer). On a failure, what was released is still sent."""
    pending: list[bytes] = []
    _collect(first, pending, terminal)
    out: list[SSEEvent] = []
    try:
        if not ended:
            await _write(send, pending)
            async for batch in upstream:
                await owner.release(batch, out)
                if out and not is_last(batch):
                    _collect(out, pending, terminal)
                    out.clear()
                    await _write(send, pending)
            await owner.end_stream(out)
    except Exception:
        _collect(out, pending, terminal)
        await _write(send, pending)
        raise
    _collect(out, pending, terminal)
    return pending


class _DisconnectGuard:
    """Cancels the streaming task when the client disconnects, so a stalled upstream read is
    interrupted at once (and the upstream request with it). The relay runs in the request's
    own task; the watcher is a second task, started only once the stream has lasted
    ``_WATCH_AFTER_S``: a stream from a fast upstream is usually over by then, and a task
    per stream is a measurable share of a short stream's cost (a timer is not)."""

    __slots__ = ("_receive", "_task", "_timer", "_watcher", "active", "fired")

    def __init__(self, receive: Receive) -> None:
        loop = asyncio.get_running_loop()
        self._task = asyncio.current_task(loop)
        self._receive = receive
        self._watcher: asyncio.Task[None] | None = None
        self.active = True
        self.fired = False
        self._timer = loop.call_later(_WATCH_AFTER_S, self._start)

    def _start(self) -> None:
        if self.active:
            self._watcher = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "http.disconnect":
                break
        if self.active and self._task is not None:
            self.fired = True
            self._task.cancel()

    def absorb(self) -> None:
        """The cancellation was ours: take it back so later awaits (finish) run normally."""
        if self._task is not None:
            self._task.uncancel()

    def stop(self) -> None:
        self.active = False
        self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()


def _collect(events: Sequence[SSEEvent], pending: list[bytes], terminal: list[SSEEvent]) -> None:
    for event in events:
        if event.is_done or event.event in _TERMINAL_EVENTS:
            terminal.append(event)
        else:
            pending.append(event.raw)


async def _write(send: Send, pending: list[bytes]) -> None:
    if pending:
        body = pending[0] if len(pending) == 1 else b"".join(pending)
        pending.clear()
        await send({"type": "http.response.body", "body": body, "more_body": True})


async def _send_event(send: Send, event: SSEEvent, more: bool) -> None:
    await send({"type": "http.response.body", "body": event.raw, "more_body": more})


def error_event(call: Call, error: GatewayError) -> SSEEvent:
    """An error in the stream, in the shape the client's SDK expects for this endpoint.

    Responses API: the ``error`` event's own fields, plus the ``error`` object, because the
    openai SDK raises on an ``event: error`` only when its data carries ``error`` (without
    it, the SDK hands the event to the caller as data and the stream simply ends)."""
    body = error.to_dict()
    if call.endpoint is Endpoint.RESPONSES:
        payload = {
            "type": "error",
            "code": error.code,
            "message": error.message,
            "param": error.param,
            **body,
        }
        return SSEEvent.from_json(payload, event="error")
    return SSEEvent.from_json(body)


async def _close_upstream(response: ModelResponse) -> None:
    if response.events is not None and hasattr(response.events, "aclose"):
        with contextlib.suppress(Exception):
            await response.events.aclose()


def _as_gateway_error(exc: Exception) -> GatewayError:
    if isinstance(exc, GatewayError):
        return exc
    log.error("stream failed before its first event: %r", exc)
    return InternalError("The gateway failed to start the stream.")
