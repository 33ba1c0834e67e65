"""The benchmark mode of the fake OpenAI upstream: pre-rendered answers on a bare httptools server.

Why a separate server: aiohttp.web tops out near 10k requests/s on one core here, and the
benchmarks run the upstream on the same core as the load generator, so the upstream must cost
far less per request than the gateway it measures. This one parses with httptools and answers
every request with bytes rendered once at start-up (from the built-in mock provider's
generator, like the recording server): nothing is recorded or parsed beyond the request line,
and faults do not apply. Streams go out chunked with the usage chunk the gateway asks for.

``FakeOpenAI(fast=True)`` uses it. The command line ``python tests/fake_openai.py --port N
[--fast] [--latency-ms M]`` (``main`` below) serves this server, or the recording one without
``--fast``, in the foreground on uvloop; ``bench/common.py`` starts it exactly like that.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib

import httptools
import orjson

from gateway.call import Endpoint
from wardgate_mock import error_body, generate

_CREATED = 1700000000
_NOT_FOUND = (b"", False)


def _http(body: bytes, content_type: str, *, chunked: bool = False, status: str = "200 OK") -> bytes:
    if chunked:  # SSE goes out chunked, as OpenAI sends it
        head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ntransfer-encoding: chunked\r\n\r\n"
        return head.encode() + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    head = f"HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {len(body)}\r\n\r\n"
    return head.encode() + body


def canned_answers(models: tuple[str, ...]) -> dict[tuple[bytes, bool], bytes]:
    """Pre-rendered HTTP answers keyed by (path, stream); ``(b"", False)`` is the 404."""
    text = "Say hello to the benchmark."
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text}]}
    chat["stream_options"] = {"include_usage": True}
    responses = {"model": "gpt-4o-mini", "input": text}
    out: dict[tuple[bytes, bool], bytes] = {}
    for path, endpoint, body in (
        (b"/v1/chat/completions", Endpoint.CHAT, chat),
        (b"/v1/responses", Endpoint.RESPONSES, responses),
    ):
        out[(path, False)] = _http(
            orjson.dumps(generate(endpoint, body, created=_CREATED).json), "application/json"
        )
        events = generate(endpoint, body, stream=True, created=_CREATED).events or []
        out[(path, True)] = _http(
            b"".join(e.raw for e in events), "text/event-stream; charset=utf-8", chunked=True
        )
    embed = {"model": "text-embedding-3-small", "input": text}
    out[(b"/v1/embeddings", False)] = _http(
        orjson.dumps(generate(Endpoint.EMBEDDINGS, embed).json), "application/json"
    )
    listing = {
        "object": "list",
        "data": [
            {"id": m, "object": "model", "created": _CREATED, "owned_by": "fake-openai"} for m in models
        ],
    }
    out[(b"/v1/models", False)] = _http(orjson.dumps(listing), "application/json")
    not_found = error_body("Invalid URL", None, 404)
    not_found["error"].update(type="invalid_request_error", code=None)
    out[_NOT_FOUND] = _http(orjson.dumps(not_found), "application/json", status="404 Not Found")
    return out


class FastServer:
    """Owns the canned answers and the request count; one ``_FastProtocol`` per connection."""

    def __init__(self, models: tuple[str, ...], latency_s: float = 0.0) -> None:
        self.canned = canned_answers(models)
        #: Added before every answer (a stand-in for model latency in benchmarks).
        self.latency_s = latency_s
        #: Requests answered; only the event loop's thread writes it.
        self.count = 0

    async def listen(self, host: str, port: int) -> asyncio.AbstractServer:
        loop = asyncio.get_running_loop()
        return await loop.create_server(lambda: _FastProtocol(self), host, port, backlog=2048)


class _FastProtocol(asyncio.Protocol):
    """httptools parsing and a pre-rendered answer: a few µs per request."""

    def __init__(self, server: FastServer) -> None:
        self.server = server
        self.parser = httptools.HttpRequestParser(self)
        self.url = b""
        self.body: list[bytes] = []
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            if self.transport is not None:
                self.transport.close()

    def on_message_begin(self) -> None:
        self.url, self.body = b"", []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        body = b"".join(self.body)
        stream = b'"stream":true' in body or b'"stream": true' in body
        path = self.url.split(b"?", 1)[0]
        canned = self.server.canned
        answer = canned.get((path, stream)) or canned.get((path, False)) or canned[_NOT_FOUND]
        self.server.count += 1
        keep_alive = self.parser.should_keep_alive()
        if self.server.latency_s:
            asyncio.get_running_loop().call_later(self.server.latency_s, self._send, answer, keep_alive)
        else:
            self._send(answer, keep_alive)

    def _send(self, answer: bytes, keep_alive: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(answer)
        if not keep_alive:
            self.transport.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A fake OpenAI API server (for tests and bench/).")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--fast", action="store_true", help="pre-rendered answers, no recording")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="added delay before every answer")
    parser.add_argument("--api-key", default=None, help="require this bearer key")
    args = parser.parse_args(argv)
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

    async def run() -> None:
        from tests.fake_openai import FakeOpenAI  # here: that module imports this one

        fake = FakeOpenAI(
            host=args.host,
            port=args.port,
            fast=args.fast,
            api_key=args.api_key,
            latency_s=args.latency_ms / 1000,
        )
        await fake.serve()
        print(f"fake-openai listening on {fake.base_url}", flush=True)
        await asyncio.Event().wait()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())
