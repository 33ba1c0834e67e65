"""The upstream MCP servers over HTTP: one pooled aiohttp session, a timeout per server.

A plain aiohttp JSON-RPC relay, not the ``mcp`` SDK's client session: the gateway forwards the
agent's own messages (its ids, its session, its protocol version) and must not re-encode or
re-number them, and the SDK client costs a task group and memory streams per session (see
docs/mcp.md, "Relay", for the measurement). The agent's virtual key is never sent: only the
headers named here go upstream, and the server's configured credential.

Every way the upstream can fail becomes an ``UpstreamFailure`` with a short kind for the audit
event and the metrics: ``unreachable`` (connect refused, DNS, reset), ``timeout`` (no answer
headers, or a silence inside a stream, longer than ``timeout_s``), ``status`` (an HTTP error
that is not a JSON-RPC answer), ``garbage`` (a body that is not JSON-RPC, or too large).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp
import yarl

from gateway.mcp.config import McpServer

#: Client headers relayed upstream (lower case); everything else stays at the gateway.
#: ``Mcp-Method`` / ``Mcp-Name`` are not among them: they are written from the body the gateway
#: judged (``routing``), so a header naming another tool than the body cannot steer a router;
#: nor ``Mcp-Param-*``: they are rebuilt from the arguments sent (``protocol.param_headers``).
FORWARDED_HEADERS = ("mcp-protocol-version", "last-event-id", "traceparent", "tracestate")


class UpstreamFailure(Exception):
    def __init__(self, kind: str, detail: str, status: int | None = None) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.status = status


class UpstreamPool:
    """One ``aiohttp.ClientSession`` for every configured server (opened at start)."""

    def __init__(self, max_connections: int) -> None:
        self._max = max_connections
        self._session: aiohttp.ClientSession | None = None
        #: One ``ClientTimeout`` per (timeout_s, stream), built once.
        self._timeouts: dict[tuple[float, bool], aiohttp.ClientTimeout] = {}
        self._urls: dict[str, yarl.URL] = {}

    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=self._max, ttl_dns_cache=300)
            # No cookies: a server's cookie must not travel to the next agent's request.
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=True
            )
        return self._session

    def _url(self, url: str) -> yarl.URL:
        """The server's URL parsed once (aiohttp parses a string URL on every request)."""
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = yarl.URL(url)
        return parsed

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def open(
        self,
        server: McpServer,
        method: str,
        client_headers: Mapping[str, str],
        session_id: str | None,
        body: bytes | None = None,
        stream: bool = False,
        routing: Mapping[str, str] | None = None,
    ) -> aiohttp.ClientResponse:
        """Send one HTTP request upstream; the answer's headers are in, its body is not read.

        ``stream``: a long-lived GET stream, whose silences are not timed out."""
        headers = {"accept": "application/json, text/event-stream"}
        if method == "GET":
            headers["accept"] = "text/event-stream"
        if body is not None:
            headers["content-type"] = "application/json"
        for name in FORWARDED_HEADERS:
            value = client_headers.get(name)
            if value:
                headers[name] = value
        if routing:
            headers.update(routing)
        if session_id is not None:
            headers["mcp-session-id"] = session_id
        if server.auth is not None:
            headers[server.auth[0]] = server.auth[1]
        timeout = self._timeouts.get((server.timeout_s, stream))
        if timeout is None:
            timeout = self._timeouts[(server.timeout_s, stream)] = aiohttp.ClientTimeout(
                total=None,
                connect=server.timeout_s,
                sock_connect=server.timeout_s,
                sock_read=None if stream else server.timeout_s,
            )
        try:
            # asyncio.timeout, not wait_for: no task of its own per request (the hot path).
            async with asyncio.timeout(server.timeout_s):
                return await self.session().request(
                    method,
                    self._url(server.url),
                    data=body,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                )
        except TimeoutError:
            raise UpstreamFailure("timeout", f"no answer within {server.timeout_s:g}s") from None
        except aiohttp.ClientError as exc:
            raise UpstreamFailure("unreachable", type(exc).__name__) from None
        except OSError as exc:
            raise UpstreamFailure("unreachable", type(exc).__name__) from None
