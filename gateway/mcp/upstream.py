"""The upstream MCP servers over HTTP: connections kept per server (``h1.py``), a timeout per server.

A plain JSON-RPC relay, not the ``mcp`` SDK's client session: the gateway forwards the agent's
own messages (its ids, its session, its protocol version) and must not re-encode or re-number
them, and the SDK client costs a task group and memory streams per session (see docs/mcp.md,
"Relay", for the measurement); nor aiohttp, whose client cost ~8x the CPU per request of the
lean one in ``h1.py``. The agent's virtual key is never sent: only the headers named here go
upstream, and the server's configured credential.

Every way the upstream can fail becomes an ``UpstreamFailure`` with a short kind for the audit
event and the metrics: ``unreachable`` (connect refused, DNS, reset), ``timeout`` (no answer
headers, or a silence inside a stream, longer than ``timeout_s``), ``status`` (an HTTP error
that is not a JSON-RPC answer), ``garbage`` (a body that is not JSON-RPC, or too large).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping

import yarl

from gateway.mcp.config import McpServer
from gateway.mcp.h1 import Client, Response
from gateway.mcp.h1 import UpstreamFailure as UpstreamFailure

#: Client headers relayed upstream (lower case); everything else stays at the gateway.
#: ``Mcp-Method`` / ``Mcp-Name`` are not among them: they are written from the body the gateway
#: judged (``routing``), so a header naming another tool than the body cannot steer a router;
#: nor ``Mcp-Param-*``: they are rebuilt from the arguments sent (``protocol.param_headers``).
FORWARDED_HEADERS = ("mcp-protocol-version", "last-event-id", "traceparent", "tracestate")


class UpstreamPool:
    """The connections to every configured server (``h1.Client``), opened as needed."""

    def __init__(self, max_connections: int) -> None:
        self._max = max_connections
        self._client: Client | None = None
        self._urls: dict[str, yarl.URL] = {}

    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self._max)
        return self._client

    def _url(self, url: str) -> yarl.URL:
        """The server's URL parsed once per server, not per request."""
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = yarl.URL(url)
        return parsed

    async def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def open(
        self,
        server: McpServer,
        method: str,
        client_headers: Mapping[str, str],
        session_id: str | None,
        body: bytes | None = None,
        stream: bool = False,
        routing: Mapping[str, str] | None = None,
    ) -> Response:
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
        try:
            # asyncio.timeout, not wait_for: no task of its own per request (the hot path).
            async with asyncio.timeout(server.timeout_s):
                return await self.client().request(
                    method,
                    self._url(server.url),
                    headers,
                    body,
                    None if stream else server.timeout_s,
                )
        except TimeoutError:
            raise UpstreamFailure("timeout", f"no answer within {server.timeout_s:g}s") from None
        except ssl.SSLCertVerificationError as exc:  # never retried unverified
            raise UpstreamFailure(
                "unreachable", f"TLS: the server's certificate is not trusted: {exc.verify_message}"
            ) from None
        except ssl.SSLError as exc:
            raise UpstreamFailure("unreachable", f"TLS: {exc.reason or type(exc).__name__}") from None
        except OSError as exc:
            raise UpstreamFailure("unreachable", type(exc).__name__) from None
