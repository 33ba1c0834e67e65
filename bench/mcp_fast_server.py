"""A lean MCP server for bench/mcp.py: the crm sample's read tools, JSON-RPC by hand on aiohttp.

    python bench/mcp_fast_server.py --port 8111

The official SDK's server (orchestrator/mcp_servers/) spends a few hundred µs of its own per
call, so a benchmark through it measures the SDK as much as the gateway; this one answers
``initialize`` (with an ``Mcp-Session-Id``), ``notifications/initialized``, ``tools/list``
and ``tools/call`` of ``lookup_order`` / ``search_kb`` from the same data (support_data.py)
with plain JSON answers, like a fast production server would. Anything else is a JSON-RPC error.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson
from aiohttp import web

from orchestrator.scenario import get_scenario
from orchestrator.scenario.support_data import SupportBackend

BACKEND = SupportBackend()
TOOLS = get_scenario("support", BACKEND).tools
READS = {
    "lookup_order": lambda a: BACKEND.lookup_order(str(a.get("order_id", ""))),
    "search_kb": lambda a: {"articles": BACKEND.search(str(a.get("query", "")))},
}


def _answer(id: Any, result: Any = None, error: tuple[int, str] | None = None) -> bytes:
    if error is not None:
        return orjson.dumps({"jsonrpc": "2.0", "id": id, "error": {"code": error[0], "message": error[1]}})
    return orjson.dumps({"jsonrpc": "2.0", "id": id, "result": result})


async def mcp(request: web.Request) -> web.Response:
    msg = orjson.loads(await request.read())
    method, id, params = msg.get("method"), msg.get("id"), msg.get("params") or {}
    headers: dict[str, str] = {}
    if id is None:  # a notification
        return web.Response(status=202)
    if method == "initialize":
        headers["Mcp-Session-Id"] = secrets.token_hex(16)
        result: Any = {
            "protocolVersion": params.get("protocolVersion") or "2025-06-18",
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "crm-fast", "version": "1"},
        }
    elif method == "tools/list":
        result = {
            "tools": [
                {"name": t.name, "description": t.description, "inputSchema": t.parameters}
                for n in READS
                if (t := TOOLS.get(n)) is not None
            ]
        }
    elif method == "tools/call" and params.get("name") in READS:
        found = READS[params["name"]](params.get("arguments") or {})
        result = {"content": [{"type": "text", "text": orjson.dumps(found).decode()}], "isError": False}
    elif method == "ping":
        result = {}
    else:
        body = _answer(id, error=(-32601, f"method {method!r} not served here"))
        return web.Response(body=body, content_type="application/json")
    return web.Response(body=_answer(id, result), content_type="application/json", headers=headers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=8111)
    args = parser.parse_args()
    app = web.Application()
    app.router.add_post("/mcp", mcp)
    app.router.add_get("/", lambda _: web.Response(text="ok"))
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
