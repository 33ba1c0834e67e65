"""``python -m orchestrator.mcp_servers {crm|payments} [--host H] [--port P] [--json]``."""

from __future__ import annotations

import argparse

import uvicorn

from orchestrator.mcp_servers import MCP_PATH, SERVERS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m orchestrator.mcp_servers", description=__doc__)
    parser.add_argument("server", choices=sorted(SERVERS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8101)
    parser.add_argument("--json", action="store_true", help="Answer POSTs with JSON instead of SSE.")
    parser.add_argument("--stateless", action="store_true", help="No sessions (Mcp-Session-Id).")
    args = parser.parse_args(argv)
    server = SERVERS[args.server]()
    print(f"{args.server} MCP server on http://{args.host}:{args.port}{MCP_PATH}", flush=True)
    uvicorn.run(
        server.app(json_response=args.json, stateless=args.stateless),
        host=args.host,
        port=args.port,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
