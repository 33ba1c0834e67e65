"""MCP: ``/mcp/{server}``, the gateway in front of the agents' MCP servers (docs/mcp.md).

config.py     McpSettings (the ``mcp`` section) and policies/mcp.yaml: the upstream servers
jsonrpc.py    one JSON-RPC message per POST, checked; the gateway's JSON-RPC errors
protocol.py   capabilities filtered, 2026-07-28 routing and Mcp-Param headers from the body
sessions.py   Mcp-Session-Id bound to the key that opened it (HMAC, nothing stored)
upstream.py   UpstreamPool: the upstream servers, a timeout per server, failures by kind
h1.py         a lean HTTP/1.1 keep-alive client (httptools), connections kept per server
h1head.py     its request head (CR/LF/NUL refused) and UpstreamFailure
relay.py      the upstream's answer (JSON, SSE, 202) back to the agent, the answer hook
refusals.py   ServerRefusals: sampling/elicitation requests of a server answered with an error
exchange.py   Exchange: one MCP request as audit, metrics and the guards see it
identity.py   the wardgate.mcp policy input: tool identity (name_key, exact numbers), fingerprints
limiter.py    McpLimiter: calls per minute per tool and scope (mcp.yaml limits)
charges.py    McpCharges: a priced tools/call reserved on the caller's budgets, then settled
guards.py     McpGuards: tools/call, resources/read, prompts/get, completions, notifications
texts.py      McpTexts: listings and the handshake (texts a model reads) redacted, filtered
approval.py   McpApprovals: hold (progress while waiting) / defer and the re-send that runs once
telemetry.py  metrics, spans and the audit event of each request
service.py    McpGateway: authenticate → server → team → session → check → guard → relay
api.py        the route;  component.py  Mcp: the component
"""
