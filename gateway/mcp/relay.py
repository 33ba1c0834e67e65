"""Relaying an upstream answer back to the agent: JSON, SSE, 202, or an HTTP error.

The answer to the agent's request (the JSON-RPC response carrying its ``id``) may be rewritten
by the guards (``on_answer``: result redaction, injection checks), and so may the server's
notifications (``on_notice``: progress and log messages are redacted like the answer, the
agent reads them too); every other message of an SSE answer (a server's own requests) passes
through byte for byte, with its ``id:`` line (resumability) kept, except a server request the gateway refuses to relay
(``protocol.REFUSED_SERVER_REQUESTS``: sampling, elicitation), which is dropped and handed to
``refuse`` (the service answers the server with an error). Whatever happens upstream, the agent gets an answer to its
request: a stream that ends or breaks without one is closed with a JSON-RPC error for that id,
so a client never waits on a request the server forgot.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeGuard

import orjson

from gateway import dupkeys
from gateway.mcp.h1 import Response
from gateway.mcp.jsonrpc import McpError
from gateway.mcp.protocol import REFUSED_SERVER_REQUESTS
from gateway.mcp.upstream import UpstreamFailure
from gateway.sse import EventSplitter, SSEEvent, SSEParseError

log = logging.getLogger("wardgate.mcp")

#: Rewrites the JSON-RPC response to the agent's request (its result, or its error).
AnswerHook = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]
#: Told how the exchange ended: the upstream failure kind, or None.
Ended = Callable[[str | None], None]
#: Given a server request the gateway does not relay (to answer the server with an error).
Refuse = Callable[[dict[str, Any]], None]

SSE_HEADERS = {"content-type": "text/event-stream", "cache-control": "no-cache, no-transform"}


@dataclass(slots=True)
class Answer:
    """What goes back to the agent: a body, or a stream of SSE bytes."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None


def json_answer(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    return Answer(status, {"content-type": "application/json", **(headers or {})}, orjson.dumps(obj))


def event_bytes(obj: Any, like: SSEEvent | None = None) -> bytes:
    """One SSE event carrying ``obj``; ``like``: keep that event's ``id:``/``event:`` lines."""
    head = b""
    if like is not None:
        for line in like.raw.replace(b"\r\n", b"\n").split(b"\n"):
            if line and not line.startswith(b"data"):
                head += line + b"\n"
    return head + b"data: " + orjson.dumps(obj) + b"\n\n"


async def read_capped(resp: Response, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in resp.content.iter_any():
        size += len(chunk)
        if size > limit:
            raise UpstreamFailure("garbage", f"answer larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _refused(obj: Any) -> TypeGuard[dict[str, Any]]:
    """A server-to-client request the gateway does not relay (sampling, elicitation)."""
    return isinstance(obj, dict) and obj.get("method") in REFUSED_SERVER_REQUESTS and "id" in obj


def _relayed(events: Sequence[SSEEvent], refuse: Refuse | None) -> Iterator[tuple[SSEEvent, Any]]:
    """Each event with its JSON, but for the server requests the gateway does not relay
    (handed to ``refuse``)."""
    for event in events:
        obj = _json(event)
        if _refused(obj):
            if refuse is not None:
                refuse(obj)
            continue
        yield event, obj


def _is_notice(obj: Any) -> TypeGuard[dict[str, Any]]:
    return isinstance(obj, dict) and "id" not in obj and isinstance(obj.get("method"), str)


async def _noticed(on_notice: AnswerHook | None, event: SSEEvent, obj: Any) -> bytes:
    """The event as the agent gets it: a notification through ``on_notice``, the rest as sent."""
    if on_notice is None or not _is_notice(obj):
        return event.raw
    if dupkeys.has_duplicate(event.data, obj):
        raise UpstreamFailure("garbage", "a notification repeats a JSON key")
    return event_bytes(await on_notice(obj), like=event)


def _answers(obj: Any, request_id: Any) -> TypeGuard[dict[str, Any]]:
    return (
        isinstance(obj, dict)
        and "method" not in obj
        and ("result" in obj or "error" in obj)
        and obj.get("id") == request_id
        and type(obj.get("id")) is type(request_id)
    )


async def relay(
    resp: Response,
    request_id: Any,
    on_answer: AnswerHook | None,
    failure: Callable[[UpstreamFailure], dict[str, Any]],
    ended: Ended,
    max_bytes: int,
    headers: dict[str, str],
    refuse: Refuse | None = None,
    on_notice: AnswerHook | None = None,
) -> Answer:
    """The agent's answer for the upstream's ``resp`` to a message (``request_id``: None for a
    notification or a response, which get the upstream's status and nothing else).

    ``failure`` renders an upstream failure as the answer to the request; ``ended`` is told
    once the exchange is over (after the last byte of a stream)."""
    ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    if request_id is None or resp.status == 202:
        resp.release()
        if resp.status >= 400:
            ended("status")
            raise UpstreamFailure("status", f"HTTP {resp.status}", resp.status)
        ended(None)
        return Answer(resp.status, headers)
    if resp.status == 200 and ctype == "text/event-stream":
        return Answer(
            200,
            {**SSE_HEADERS, **headers},
            stream=_stream(resp, request_id, on_answer, failure, ended, max_bytes, refuse, on_notice),
        )
    try:
        body = await read_capped(resp, max_bytes)
    finally:
        resp.release()
    try:
        obj = orjson.loads(body) if ctype == "application/json" or body[:1] == b"{" else None
    except orjson.JSONDecodeError:
        obj = None
    if obj is not None and on_answer is not None and dupkeys.has_duplicate(body, obj):
        raise UpstreamFailure("garbage", "the answer repeats a JSON key")
    if not _answers(obj, request_id):
        kind = "status" if resp.status >= 400 else "garbage"
        raise UpstreamFailure(kind, f"HTTP {resp.status}, not a JSON-RPC answer to the request", resp.status)
    if on_answer is not None:
        obj = await _guarded(on_answer, obj)
    ended(None)
    return json_answer(obj, 200 if resp.status < 400 else resp.status, headers)


async def _guarded(on_answer: AnswerHook, obj: dict[str, Any]) -> dict[str, Any]:
    try:
        return await on_answer(obj)
    except McpError as exc:
        return orjson.loads(exc.body()) | {"id": obj.get("id")}


async def _stream(
    resp: Response,
    request_id: Any,
    on_answer: AnswerHook | None,
    failure: Callable[[UpstreamFailure], dict[str, Any]],
    ended: Ended,
    max_bytes: int,
    refuse: Refuse | None = None,
    on_notice: AnswerHook | None = None,
) -> AsyncIterator[bytes]:
    splitter = EventSplitter(max_bytes)
    answered = False
    problem: str | None = None
    try:
        try:
            async for chunk in resp.content.iter_any():
                out: list[bytes] = []
                for event, obj in _relayed(splitter.feed(chunk), refuse):
                    if not answered and _answers(obj, request_id):
                        answered = True
                        if on_answer is not None:
                            if dupkeys.has_duplicate(event.data, obj):
                                raise UpstreamFailure("garbage", "the answer repeats a JSON key")
                            out.append(event_bytes(await _guarded(on_answer, obj), like=event))
                            continue
                    out.append(await _noticed(on_notice, event, obj))
                if out:
                    yield b"".join(out)
                if answered:
                    break  # the spec: the server closes the stream after the answer
            if not answered:
                splitter.close()
                raise UpstreamFailure("garbage", "the stream ended without an answer to the request")
        except UpstreamFailure as exc:
            problem = exc.kind
            yield event_bytes(failure(exc))
        except SSEParseError as exc:
            problem = "garbage"
            yield event_bytes(failure(UpstreamFailure("garbage", str(exc))))
        except TimeoutError:
            problem = "timeout"
            yield event_bytes(failure(UpstreamFailure("timeout", "the stream went silent")))
    finally:
        resp.release()
        ended(problem)


def _json(event: SSEEvent) -> Any:
    if not event.data:
        return None
    try:
        return orjson.loads(event.data)
    except orjson.JSONDecodeError:
        return None


async def raw_stream(
    resp: Response,
    ended: Ended,
    max_bytes: int,
    refuse: Refuse | None = None,
    on_notice: AnswerHook | None = None,
) -> AsyncIterator[bytes]:
    """A GET stream (the server's own messages) relayed event by event, but for the requests
    the gateway refuses to relay (notifications through ``on_notice``); its silences are not
    timed out."""
    problem: str | None = None
    splitter = EventSplitter(max_bytes)
    try:
        async for chunk in resp.content.iter_any():
            out = [
                await _noticed(on_notice, event, obj) for event, obj in _relayed(splitter.feed(chunk), refuse)
            ]
            if out:
                yield b"".join(out)
    except SSEParseError:
        problem = "garbage"
    except UpstreamFailure as exc:  # garbage in an event, or the connection lost (unreachable)
        problem = exc.kind
    finally:
        resp.release()
        ended(problem)
