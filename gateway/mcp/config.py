"""The ``mcp:`` settings section and ``policies/mcp.yaml`` (the upstream MCP servers).

``mcp.yaml`` names each upstream server once: its Streamable HTTP URL, the header the gateway
sends it (``auth_header``, value read from the env var ``auth_env``, so no credential sits in
a file), its timeout and which teams may reach it. Like every file under ``policies/`` it is
strict: an unknown key refuses the start with the closest known spelling. It is read once at
start (a change needs a restart) and is not policy data: the Rego package ``wardgate.mcp``
lives at the path the file's data would take, so ``gateway/policy/source.py`` skips it.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from gateway.yamlfile import read_mapping

log = logging.getLogger("wardgate.mcp")

#: A server name is one path segment of ``/mcp/{server}``.
SERVER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class McpFileError(ValueError):
    """``policies/mcp.yaml`` cannot be used (the message names the file and the key)."""


class ToolLimit(BaseModel):
    """Calls per minute of the tools matching ``tools`` (name_key globs), counted per ``scope``."""

    model_config = ConfigDict(extra="forbid")

    tools: list[str] = Field(default_factory=lambda: ["*"])
    scope: Literal["key", "team", "agent", "run"] = "key"
    calls_per_minute: int = Field(ge=0, le=1_000_000)


class McpServerConfig(BaseModel):
    """One upstream MCP server (Streamable HTTP)."""

    model_config = ConfigDict(extra="forbid")

    url: str
    #: Header sent upstream with the value of ``auth_env`` (the agent's own key never is).
    auth_header: str | None = None
    auth_env: str | None = None
    #: Connect + answer headers, and the longest silence inside a streamed answer.
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    #: Teams whose keys may use the server; omitted: every team.
    teams: list[str] | None = None
    #: Rate limits on ``tools/call``: each matching rule counts the call in its scope.
    limits: list[ToolLimit] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("url must be an http:// or https:// Streamable HTTP endpoint")
        return value


class McpFile(BaseModel):
    """The shape of ``policies/mcp.yaml``."""

    model_config = ConfigDict(extra="forbid")

    servers: dict[str, McpServerConfig] = Field(default_factory=dict)


class McpSettings(BaseModel):
    """The ``mcp:`` section of ``wardgate.yaml``."""

    enabled: bool = True
    #: The servers file, under ``policies_dir``; absent: no server (every ``/mcp/x`` is a 404).
    servers_file: str = "mcp.yaml"
    #: A JSON-RPC message above this is refused (413) before it is parsed.
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    #: An answer (JSON, or one SSE event) from a server above this becomes an error result.
    max_response_bytes: int = Field(default=8 * 1024 * 1024, gt=0)
    #: Connections per upstream server (kept alive, gateway/mcp/h1.py).
    max_connections: int = Field(default=100, ge=1)
    #: A held tool call (approval ``hold``) tells the client it is still waiting this often.
    approval_progress_s: float = Field(default=5.0, gt=0, le=60)
    #: A resource blob whose bytes are not text (an image, a zip: nothing redaction can read):
    #: ``pass`` relays it, ``refuse`` withholds the answer (docs/mcp.md "What is scanned").
    binary_blobs: Literal["pass", "refuse"] = "pass"


@dataclass(frozen=True, slots=True)
class McpServer:
    """A configured server as the relay uses it: the header value already read from the env."""

    name: str
    url: str
    timeout_s: float
    teams: frozenset[str] | None
    auth: tuple[str, str] | None
    limits: tuple[ToolLimit, ...] = ()

    def allows_team(self, team: str) -> bool:
        return self.teams is None or team in self.teams


def load_servers(path: Path, environ: dict[str, str] | None = None) -> dict[str, McpServer]:
    """The servers of ``path`` (none when the file does not exist); raises ``McpFileError``."""
    doc = read_mapping(path, McpFile, McpFileError)
    if doc is None:
        return {}
    try:
        parsed = McpFile.model_validate(doc)
    except ValueError as exc:
        raise McpFileError(f"{path}: {exc}") from exc
    env = os.environ if environ is None else environ
    servers: dict[str, McpServer] = {}
    for name, cfg in parsed.servers.items():
        if not SERVER_NAME.match(name):
            raise McpFileError(f"{path}: servers.{name}: a server name is letters, digits, '_', '.', '-'")
        if "@" in re.split(r"[/?#]", cfg.url.split("//", 1)[1], maxsplit=1)[0]:  # never shown
            raise McpFileError(
                f"{path}: servers.{name}: the url holds a user or password, which the relay does "
                "not send: put the credential in an env variable named by auth_env, with auth_header"
            )
        auth: tuple[str, str] | None = None
        if cfg.auth_env and not cfg.auth_header:
            raise McpFileError(f"{path}: servers.{name}: auth_env needs auth_header (the header to send)")
        if cfg.auth_header:
            value = env.get(cfg.auth_env) if cfg.auth_env else None
            if value:
                auth = (cfg.auth_header, value)
            else:  # named, never its value
                log.warning(
                    "mcp server %s: %s is unset, so no %s header is sent upstream",
                    name,
                    cfg.auth_env or "auth_env",
                    cfg.auth_header,
                )
        servers[name] = McpServer(
            name=name,
            url=cfg.url,
            timeout_s=cfg.timeout_s,
            teams=frozenset(cfg.teams) if cfg.teams is not None else None,
            auth=auth,
            limits=tuple(cfg.limits),
        )
    return servers
