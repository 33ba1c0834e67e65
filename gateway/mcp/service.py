"""One MCP HTTP request, from the agent's headers to the answer: the gateway's MCP front door.

    authenticate (virtual key) → server (mcp.yaml) → team → agent/run ids → session (bound to
    the key) → [POST: size, JSON-RPC check, method guard] → upstream → relay → audit

Refusals before the upstream are JSON-RPC errors with their HTTP status (``jsonrpc.py``);
the upstream's failures become an error answer to the request (``failure_message``), so an
agent's call always ends. What a method's guard does (tools/list filtering, tools/call
limits/redaction/policy/approvals, resources/prompts policy) is ``guards.py``'s; this module
only calls it. Every request message is audited once (``exchange.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from gateway.errors import BadRequest
from gateway.identity import check_id
from gateway.keys.bearer import bearer_token
from gateway.keys.store import hash_key
from gateway.mcp import sessions
from gateway.mcp.approval import tool_error
from gateway.mcp.config import McpServer, McpSettings
from gateway.mcp.exchange import Exchange
from gateway.mcp.h1 import Response
from gateway.mcp.jsonrpc import (
    FORBIDDEN,
    INVALID_REQUEST,
    NOT_FOUND,
    UNAUTHORIZED,
    UPSTREAM_ERROR,
    McpError,
    Message,
    parse,
)
from gateway.mcp.protocol import (
    HANDSHAKE_VERSIONS,
    filter_client_capabilities,
    filter_server_capabilities,
    param_headers,
    param_paths,
    routing_headers,
)
from gateway.mcp.refusals import ServerRefusals
from gateway.mcp.relay import Answer, AnswerHook, json_answer, raw_stream, relay
from gateway.mcp.upstream import UpstreamFailure, UpstreamPool

if TYPE_CHECKING:
    from gateway.keys.store import KeyStore

#: Reads the request body, refusing it past the limit (raises ``McpError`` 413).
BodyReader = Callable[[int], Awaitable[bytes]]


class Guard(Protocol):
    """The per-method guards (``guards.py``): may answer early, rewrite params, or hook the answer."""

    async def before(
        self, ex: Exchange, headers: Mapping[str, str], forward: Callable[[], Awaitable[Answer]], sse_ok: bool
    ) -> Answer | None: ...

    def answer_hook(self, ex: Exchange) -> AnswerHook | None: ...

    def notice_hook(self, ex: Exchange) -> AnswerHook | None: ...

    def handshake_hook(self, ex: Exchange) -> AnswerHook: ...


class McpGateway:
    def __init__(
        self,
        settings: McpSettings,
        servers: dict[str, McpServer],
        pool: UpstreamPool,
        keys: Callable[[], KeyStore],
        finish: Callable[[Exchange], Awaitable[None]],
        guard: Guard | None = None,
    ) -> None:
        self.settings = settings
        self.servers = servers
        self.pool = pool
        self._keys = keys
        self._finish = finish
        self.guard = guard
        self._finishing_tasks: set[asyncio.Task[None]] = set()
        self.refusals = ServerRefusals(pool)

    async def handle(
        self, http_method: str, server_name: str, headers: Mapping[str, str], read_body: BodyReader
    ) -> Answer:
        ex = Exchange(server_name, http_method, time.perf_counter())
        ex.traceparent = headers.get("traceparent")
        ex.session = headers.get("mcp-session-id")
        version = headers.get("mcp-protocol-version")
        ex.modern = version is not None and version not in HANDSHAKE_VERSIONS
        try:
            answer = await self._handle(ex, http_method, server_name, headers, read_body)
        except McpError as exc:
            ex.refused(exc)
            await self._finish(ex)
            return Answer(exc.status, {"content-type": "application/json", **exc.headers}, exc.body())
        if answer.stream is None:
            await self._finish(ex)
        else:
            answer.stream = self._finishing(answer.stream, ex)
        return answer

    def _caller(self, ex: Exchange, headers: Mapping[str, str]) -> tuple[str, str]:
        """The caller's key and its ``hash_key`` digest (sessions are remembered under it)."""
        token = bearer_token(headers.get("authorization"))
        digest = hash_key(token) if token else ""
        principal = self._keys().by_hash(digest) if token else None
        if token is None or principal is None:
            message = (
                "Invalid API key. Send your Wardgate virtual key as 'Authorization: Bearer wg-...'."
                if token
                else "No API key. Send your Wardgate virtual key as 'Authorization: Bearer wg-...'."
            )
            raise McpError(
                401, UNAUTHORIZED, message, kind="unauthorized", headers={"www-authenticate": "Bearer"}
            )
        ex.principal = principal
        try:
            for attr, header, label in (
                ("agent_id", "x-agent-id", "X-Agent-Id"),
                ("run_id", "x-run-id", "X-Run-Id"),
                ("parent_run_id", "x-parent-run-id", "X-Parent-Run-Id"),
            ):
                value = headers.get(header)
                if value:
                    setattr(ex, attr, check_id(value, header, label))
        except BadRequest as exc:
            raise McpError(400, INVALID_REQUEST, exc.message, kind="invalid_identity") from None
        return token, digest

    async def _handle(
        self, ex: Exchange, http_method: str, name: str, headers: Mapping[str, str], read_body: BodyReader
    ) -> Answer:
        token, digest = self._caller(ex, headers)
        server = self.servers.get(name)
        if server is None:
            raise McpError(404, NOT_FOUND, f"Unknown MCP server {name[:64]!r}.", kind="unknown_server")
        assert ex.principal is not None
        if not server.allows_team(ex.principal.team):
            raise McpError(
                403, FORBIDDEN, f"Your team may not use the MCP server {name!r}.", kind="team_not_allowed"
            )
        ex.server = server
        upstream_session: str | None = None
        presented = headers.get("mcp-session-id")
        if presented:
            try:
                upstream_session = sessions.unbind(token, name, presented, digest)
            except sessions.SessionRefused:
                raise McpError(
                    404,
                    NOT_FOUND,
                    "Session not found: an MCP session belongs to the key that opened it; initialize a new one.",
                    kind="session_refused",
                ) from None
        bind = _binder(token, name, digest)
        if http_method == "DELETE":
            if upstream_session is None:
                raise McpError(
                    400, INVALID_REQUEST, "DELETE needs the Mcp-Session-Id to end.", kind="no_session"
                )
            return await self._simple(ex, server, "DELETE", headers, upstream_session, bind)
        if http_method == "GET":
            if "text/event-stream" not in headers.get("accept", ""):
                raise McpError(
                    406, INVALID_REQUEST, "GET opens an SSE stream: Accept must include text/event-stream."
                )
            return await self._get_stream(ex, server, headers, upstream_session, bind)
        ctype = headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != "application/json":
            raise McpError(
                415, INVALID_REQUEST, "A JSON-RPC message is sent as Content-Type: application/json."
            )
        body = await read_body(self.settings.max_body_bytes)
        message = parse(body)
        ex.message = message
        ex.body = body
        if not message.is_request:
            return await self._simple(ex, server, "POST", headers, upstream_session, bind, body)
        return await self._request(ex, server, headers, upstream_session, bind, message)

    async def _request(
        self,
        ex: Exchange,
        server: McpServer,
        headers: Mapping[str, str],
        upstream_session: str | None,
        bind: Callable[[str], str | None],
        message: Message,
    ) -> Answer:
        routing = routing_headers(message, headers)
        # Mcp-Param-* belong to the stateless era; an older client's are never forwarded.
        params = param_paths(message, headers) if ex.modern else None
        hook: AnswerHook | None = None

        async def forward() -> Answer:
            sent = routing
            if params is not None:  # rebuilt from the arguments as sent (after redaction)
                sent = {**routing, **param_headers(params, message.params.get("arguments"))}
            return await self._forward(ex, server, headers, upstream_session, bind, message, sent, hook)

        handshake = message.method in ("initialize", "server/discover")
        if (ex.modern or handshake) and filter_client_capabilities(message):
            ex.rewritten = orjson.dumps(message.raw)
        if handshake:
            hook = self.guard.handshake_hook(ex) if self.guard is not None else _capabilities
        elif self.guard is not None:
            hook = self.guard.answer_hook(ex)
            sse_ok = "text/event-stream" in headers.get("accept", "")
            early = await self.guard.before(ex, headers, forward, sse_ok)
            if early is not None:
                return early
        return await forward()

    async def _forward(
        self,
        ex: Exchange,
        server: McpServer,
        headers: Mapping[str, str],
        upstream_session: str | None,
        bind: Callable[[str], str | None],
        message: Message,
        routing: dict[str, str],
        hook: AnswerHook | None,
    ) -> Answer:
        body = ex.rewritten if ex.rewritten is not None else ex.body
        try:
            resp = await self.pool.open(server, "POST", headers, upstream_session, body, routing=routing)
            out_headers = _session_header(resp.headers.get("mcp-session-id"), bind, resp)
            if resp.status == 404 and upstream_session is not None:
                resp.release()
                raise McpError(
                    404,
                    NOT_FOUND,
                    "Session expired upstream; initialize a new one.",
                    id=message.id,
                    kind="session_expired",
                )
            return await relay(
                resp,
                message.id,
                hook,
                lambda f: self.failure_message(ex, f),
                ex.upstream_ended,
                self.settings.max_response_bytes,
                out_headers,
                self.refusals.refuser(server, headers, upstream_session),
                self.guard.notice_hook(ex) if self.guard is not None else None,
            )
        except UpstreamFailure as failure:
            ex.upstream_ended(failure.kind, failure.status)
            return json_answer(self.failure_message(ex, failure))

    def failure_message(self, ex: Exchange, failure: UpstreamFailure) -> dict[str, Any]:
        """The answer to the agent's request when the upstream failed: a tool result with
        ``isError`` for ``tools/call`` (the model reads it and moves on), else a JSON-RPC error."""
        ex.upstream_error = failure.kind
        assert ex.message is not None and ex.server is not None
        text = f"The MCP server {ex.server.name!r} failed: {failure.kind} ({failure.detail})."
        if ex.message.method == "tools/call":
            return tool_error(ex, text)
        return {
            "jsonrpc": "2.0",
            "id": ex.message.id,
            "error": {
                "code": UPSTREAM_ERROR,
                "message": text,
                "data": {"type": "upstream_" + failure.kind, "source": "wardgate"},
            },
        }

    async def _open(
        self,
        ex: Exchange,
        server: McpServer,
        method: str,
        headers: Mapping[str, str],
        upstream_session: str | None,
        body: bytes | None,
        stream: bool = False,
    ) -> Response:
        """The upstream's answer to a request that is not a JSON-RPC request (no id to answer
        with an error result): its failure is a 502 JSON-RPC error."""
        try:
            return await self.pool.open(server, method, headers, upstream_session, body, stream=stream)
        except UpstreamFailure as failure:
            ex.upstream_ended(failure.kind)
            raise McpError(
                502,
                UPSTREAM_ERROR,
                f"The MCP server {server.name!r} failed: {failure.kind}.",
                kind="upstream_" + failure.kind,
            ) from None

    async def _simple(
        self,
        ex: Exchange,
        server: McpServer,
        method: str,
        headers: Mapping[str, str],
        upstream_session: str | None,
        bind: Callable[[str], str | None],
        body: bytes | None = None,
    ) -> Answer:
        """A notification, a response to the server, or a DELETE: the upstream's status, no body."""
        resp = await self._open(ex, server, method, headers, upstream_session, body)
        status = resp.status
        resp.release()
        ex.upstream_ended(None if status < 400 else "status", status)
        out = _session_header(resp.headers.get("mcp-session-id"), bind)
        if status >= 400:
            raise McpError(
                status if status in (400, 404, 405) else 502,
                UPSTREAM_ERROR,
                f"The MCP server {server.name!r} answered HTTP {status}.",
                kind="upstream_status",
            )
        return Answer(202 if method == "POST" else status, out)

    async def _get_stream(
        self,
        ex: Exchange,
        server: McpServer,
        headers: Mapping[str, str],
        upstream_session: str | None,
        bind: Callable[[str], str | None],
    ) -> Answer:
        resp = await self._open(ex, server, "GET", headers, upstream_session, None, stream=True)
        ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
        if resp.status != 200 or ctype != "text/event-stream":
            status = resp.status
            resp.release()
            ex.upstream_ended(None, status)
            raise McpError(
                405 if status == 405 else 502,
                INVALID_REQUEST,
                f"The MCP server {server.name!r} offers no GET stream (HTTP {status}).",
                kind="no_stream",
            )
        out = _session_header(resp.headers.get("mcp-session-id"), bind, resp)
        return Answer(
            200,
            {"content-type": "text/event-stream", "cache-control": "no-cache, no-transform", **out},
            stream=raw_stream(
                resp,
                ex.upstream_ended,
                self.settings.max_response_bytes,
                self.refusals.refuser(server, headers, upstream_session),
                self.guard.notice_hook(ex) if self.guard is not None else None,
            ),
        )

    async def _finishing(self, stream: AsyncIterator[bytes], ex: Exchange) -> AsyncIterator[bytes]:
        """The stream, then the request's audit event; in a task of its own, so a client that
        leaves (its stream cancelled) still gets its event recorded."""
        try:
            async for chunk in stream:
                yield chunk
        finally:
            task: asyncio.Task[None] = asyncio.ensure_future(self._finish(ex))
            self._finishing_tasks.add(task)
            task.add_done_callback(self._finishing_tasks.discard)


async def _capabilities(answer: dict[str, Any]) -> dict[str, Any]:
    return filter_server_capabilities(answer)


def _binder(token: str, server: str, digest: str) -> Callable[[str], str | None]:
    return lambda upstream_id: sessions.bind(token, server, upstream_id, digest)


def _session_header(
    upstream_id: str | None, bind: Callable[[str], str | None], resp: Response | None = None
) -> dict[str, str]:
    """The agent's ``Mcp-Session-Id`` for the server's (refused, and ``resp`` released, when the
    server's is not a valid id)."""
    if not upstream_id:
        return {}
    bound = bind(upstream_id)
    if bound is None:
        if resp is not None:
            resp.release()
        raise McpError(
            502,
            UPSTREAM_ERROR,
            "The MCP server's Mcp-Session-Id is not visible ASCII.",
            kind="upstream_garbage",
        )
    return {"mcp-session-id": bound}
