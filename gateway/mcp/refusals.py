"""Server requests the gateway does not relay to the agent, answered with an error upstream.

``sampling/createMessage`` (the server asks the agent's model) and ``elicitation/create`` (the
server asks the agent's user) would reach a model or a person around the gateway's policy,
redaction and budgets. The gateway does not offer those client capabilities
(``protocol.CLIENT_CAPABILITIES``); a server that asks anyway has its request dropped from the
stream the agent reads (``relay``) and answered here with a JSON-RPC error, so it does not
wait for an answer that never comes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from gateway.mcp.config import McpServer
from gateway.mcp.jsonrpc import METHOD_NOT_FOUND, error_body
from gateway.mcp.relay import Refuse
from gateway.mcp.upstream import UpstreamFailure, UpstreamPool

log = logging.getLogger("wardgate.mcp")


class ServerRefusals:
    def __init__(self, pool: UpstreamPool) -> None:
        self._pool = pool
        self._tasks: set[asyncio.Task[None]] = set()

    def refuser(self, server: McpServer, headers: Mapping[str, str], upstream_session: str | None) -> Refuse:
        """What the relay calls with a refused server request of this exchange."""

        def refuse(request: dict[str, Any]) -> None:
            method = request.get("method")
            log.info("mcp server %s asked %s: refused, not relayed", server.name, method)
            body = error_body(
                request.get("id"),
                METHOD_NOT_FOUND,
                f"Wardgate does not relay {method} to the client: the gateway cannot guard it.",
                "server_request_refused",
            )
            task = asyncio.ensure_future(self._answer(server, headers, upstream_session, body))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        return refuse

    async def _answer(
        self, server: McpServer, headers: Mapping[str, str], upstream_session: str | None, body: bytes
    ) -> None:
        try:
            resp = await self._pool.open(server, "POST", headers, upstream_session, body)
            resp.release()
        except UpstreamFailure as failure:
            log.info("mcp server %s: refusal not delivered (%s)", server.name, failure.kind)
