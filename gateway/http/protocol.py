"""The HTTP/1.1 protocol: uvicorn's httptools protocol plus the limits a public server needs.

uvicorn's httptools protocol alone has no header timeout, no header size or count limit, no
body timeout and no connection cap (a silent connection stays open for ever; httptools
buffers a header of any size), and it closes a ``Connection: close`` request's socket as
soon as the answer is written, so a client still sending its body (urllib) reads a reset
instead of an early 401/413. This subclass adds all of it at a cost within noise: each
connection carries a phase and a deadline (two attribute writes per request), one sweep per
worker (``IntakeGuard``) closes what is overdue instead of a timer per request, and header
bytes are counted as they arrive, so an oversized header is refused before it is buffered.
Why a subclass and not another server (granian, hypercorn): it keeps uvicorn + httptools,
which the hot path was tuned on, each limit is a few lines here, and bench/overhead.py shows
no measurable cost; another server would only be worth measuring if a limit could not be
enforced this way.

A connection is in one phase at a time:

    HEAD     a request line and headers arriving   deadline: header_timeout_s from the first
                                                   byte (from connect on a new connection)
    BODY     headers done, body still arriving     deadline: body_timeout_s from the headers
    APP      request complete, the app answers     none (the upstream timeouts apply)
    DRAIN    answered before the body ended: the rest is read and dropped (up to
             drain_max_bytes, within the body's deadline), then the connection is reused
             or, if the client asked for ``Connection: close``, closed
    IDLE     keep-alive, between requests          deadline: keepalive_timeout_s
    CLOSING  refused (408/431/400/503): the answer and a FIN are sent, what still arrives is
             dropped for a moment (LINGER_S, at most LINGER_MAX_BYTES) so the client reads
             the answer, then the socket closes
"""

from __future__ import annotations

import asyncio
import http
import logging
from collections.abc import Callable
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.flow_control import HIGH_WATER_LIMIT
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from gateway.errors import BadRequest, GatewayError, HeadersTooLarge, Overloaded, RequestTimeout
from gateway.http.intake import (
    APP,
    BODY,
    CLOSING,
    DRAIN,
    HEAD,
    IDLE,
    LINGER_MAX_BYTES,
    LINGER_S,
    NEVER,
    IntakeGuard,
)
from gateway.settings import ServerSettings

log = logging.getLogger("wardgate.http")

#: What ``uvicorn.Config(http=...)`` is given (an import string, so ``--workers N`` works).
HTTP_PROTOCOL = "gateway.http.protocol:WardgateProtocol"
#: The key of the lifespan state under which the app hands the guard to the protocol.
INTAKE_STATE = "wardgate.intake"


class _Refusal(Exception):
    """Raised in a parser callback to stop parsing and answer ``error`` (httptools re-raises
    it as the context of its HttpParserCallbackError)."""

    def __init__(self, error: GatewayError) -> None:
        super().__init__(error.message)
        self.error = error


class _CycleTransport:
    """What a request's ``RequestResponseCycle`` sees as its transport: the real one, except
    that ``close`` (the answer to a ``Connection: close`` request is complete) may wait until
    the client has finished sending its body."""

    __slots__ = ("close", "get_extra_info", "is_closing", "write")

    def __init__(self, transport: asyncio.Transport, close: Callable[[], None]) -> None:
        self.write = transport.write
        self.is_closing = transport.is_closing
        self.get_extra_info = transport.get_extra_info
        self.close = close


class WardgateProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header/body/idle timeouts, header limits, a
    connection cap and a drain after early answers (see the module docstring)."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        guard = app_state.get(INTAKE_STATE)
        # Without the app's lifespan (another app under this protocol) the limits still
        # apply, but nothing sweeps: timeouts are off.
        self.guard: IntakeGuard = guard if guard is not None else IntakeGuard(ServerSettings())
        self.phase = HEAD
        self.deadline = NEVER
        self._head_bytes = 0
        self._dropped = 0
        self._close_when_drained = False
        self._cycle_transport: _CycleTransport | None = None

    @property
    def answering(self) -> bool:
        """Whether an answer is still going out on this connection (a pipelined next request
        may already be arriving): such a connection is never displaced."""
        cycle = self.cycle
        return cycle is not None and not cycle.response_complete

    # Connection events

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's protocol is served over a socket Transport
        super().connection_made(transport)
        self._cycle_transport = _CycleTransport(transport, self._close_after_response)
        self.deadline = self.loop.time() + self.guard.header_timeout
        if not self.guard.admit(self):
            self._refuse(
                Overloaded(
                    "The gateway is at its connection limit (server.max_connections); retry shortly.",
                    headers={"retry-after": "1"},
                ),
                "connection_cap",
                linger=False,
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self.guard.release(self)
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        phase = self.phase
        if phase == CLOSING:
            self._drop(len(data))
            return
        if phase == IDLE or phase == APP:  # a (pipelined) next request starts
            self.phase = phase = HEAD
            self._head_bytes = 0
            self.deadline = self.loop.time() + self.guard.header_timeout
        if phase == HEAD:
            self._head_bytes += len(data)
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _Refusal):
                self._refuse(exc.__context__.error, "headers_too_large")
            else:
                self._refuse(_malformed(), "bad_request")
            return
        except httptools.HttpParserError:
            self._refuse(_malformed(), "bad_request")
            return
        except httptools.HttpParserUpgrade:
            return  # WebSockets are not served (ws="none"): the request was handled as plain HTTP
        if self.phase == HEAD and self._head_bytes > self.guard.max_header_bytes:
            self._refuse(_headers_too_large(self.guard), "headers_too_large")

    # Parser callbacks

    def on_headers_complete(self) -> None:
        guard = self.guard
        if len(self.headers) > guard.max_headers:
            raise _Refusal(
                HeadersTooLarge(
                    f"Too many request header fields: at most {guard.max_headers} (server.max_headers)."
                )
            )
        if (
            self._head_bytes > guard.max_header_bytes
            and _head_size(self.url, self.headers) > guard.max_header_bytes
        ):
            raise _Refusal(_headers_too_large(guard))
        super().on_headers_complete()
        self.phase = BODY
        self.deadline = self.loop.time() + guard.body_timeout
        self.cycle.transport = self._cycle_transport  # type: ignore[assignment]  # the cycle writes through our transport wrapper

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        if cycle.response_complete:  # answered early: drop the rest of the body
            self._drop(len(body))
            return
        if self.parser.should_upgrade() and self._should_upgrade():
            return
        cycle.body += body
        if len(cycle.body) > HIGH_WATER_LIMIT:
            self.flow.pause_reading()
        cycle.message_event.set()

    def on_message_complete(self) -> None:
        if self.phase == DRAIN:
            if self._close_when_drained:
                self.transport.close()
            else:
                self._idle()
            return
        self.phase = APP
        self.deadline = NEVER
        cycle = self.cycle
        if (self.parser.should_upgrade() and self._should_upgrade()) or cycle.response_complete:
            return
        cycle.more_body = False
        cycle.message_event.set()

    # Response events

    def on_response_complete(self) -> None:
        # uvicorn's, with the keep-alive timer replaced by the phase (no timer per request).
        self.server_state.total_requests += 1
        if self.transport.is_closing() or self._close_when_drained or self.phase == CLOSING:
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
            return
        if self.phase == BODY:
            self.phase = DRAIN  # the body's deadline still holds
            self._dropped = 0
        elif self.phase == APP:
            self._idle()

    def _close_after_response(self) -> None:
        """The cycle closes the connection (``Connection: close``, or an error): if the client
        is still sending its body, read it to the end first so it reads the answer."""
        cycle = self.cycle
        if (
            self.phase == BODY
            and cycle is not None
            and cycle.response_complete
            and not self.transport.is_closing()
        ):
            self.phase = DRAIN
            self._dropped = 0
            self._close_when_drained = True
            self.flow.resume_reading()
            return
        self.transport.close()

    # Deadlines and refusals

    def expire(self, now: float) -> None:
        """The sweep found this connection past its deadline."""
        phase, guard = self.phase, self.guard
        self.deadline = NEVER  # a branch that keeps the connection sets a new one
        if phase == HEAD:
            if self.answering:
                self.deadline = now + self.guard.header_timeout  # an answer is still going out
                return
            if self._head_bytes == 0:
                guard.count("silent")
                self.transport.close()
                return
            self._refuse(
                RequestTimeout("The request headers did not arrive in time (server.header_timeout_s)."),
                "header_timeout",
            )
        elif phase == BODY:
            cycle = self.cycle
            if cycle is not None and not cycle.response_started:
                cycle.disconnected = True  # the app's receive() now answers http.disconnect
                cycle.message_event.set()
                self._refuse(
                    RequestTimeout("The request body did not arrive in time (server.body_timeout_s)."),
                    "body_timeout",
                )
            else:
                guard.count("body_timeout")
                self.transport.close()
        elif phase == DRAIN:
            guard.count("drain_timeout")
            self.transport.close()
        elif phase == IDLE:
            self.transport.close()  # keep-alive expiry: silent, as clients expect
        elif phase == CLOSING:
            self.transport.close()

    def _idle(self) -> None:
        self.phase = IDLE
        self.deadline = self.loop.time() + self.guard.keepalive_timeout

    def _drop(self, n: int) -> None:
        self._dropped += n
        if self.phase == CLOSING:
            if self._dropped > LINGER_MAX_BYTES:
                self.deadline = NEVER
                self.transport.close()
        elif self._dropped > self.guard.drain_max_bytes:
            self.guard.count("drain_bound")
            self.phase = CLOSING
            self.deadline = NEVER
            self.transport.close()

    def _refuse(self, error: GatewayError, reason: str, *, linger: bool = True) -> None:
        """Answer ``error`` (OpenAI-shaped) and close: first a FIN, then, for ``LINGER_S``, drop
        what still arrives (closing a socket with unread data sends a reset, which many
        clients report instead of the answer)."""
        self.guard.count(reason)
        self.phase = CLOSING
        self._dropped = 0
        self.deadline = self.loop.time() + LINGER_S
        transport = self.transport
        if transport.is_closing():
            return
        transport.write(_raw_response(error))
        if not linger:
            transport.close()
            return
        self.flow.resume_reading()
        try:
            if transport.can_write_eof():
                transport.write_eof()
        except OSError:  # the peer is already gone (ENOTCONN): nothing left to say
            transport.close()


def _malformed() -> BadRequest:
    return BadRequest("Malformed HTTP request.", code="invalid_http_request")


def _headers_too_large(guard: IntakeGuard) -> HeadersTooLarge:
    return HeadersTooLarge(
        f"The request line and headers exceed {guard.max_header_bytes} bytes (server.max_header_bytes)."
    )


def _head_size(url: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    return len(url) + sum(len(name) + len(value) + 4 for name, value in headers)


def _raw_response(error: GatewayError) -> bytes:
    body = error.to_json()
    phrase = http.HTTPStatus(error.status).phrase
    lines = [
        f"HTTP/1.1 {error.status} {phrase}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    lines += [f"{name}: {value}" for name, value in error.response_headers().items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
