"""Orchestrator settings: where the gateway is, which key each agent uses, how patient to be.

Every agent (planner, each worker, reviewer) has its own virtual key so the gateway can give
each its own policies, rate limits and budgets; an agent without one uses ``api_key``.
Sources, later wins: defaults → YAML file (``--config``) → environment:

    WARDGATE_BASE_URL, WARDGATE_API_KEY, WARDGATE_ADMIN_KEY, ORCHESTRATOR_MODEL,
    WARDGATE_AGENT_KEY_<AGENT> (e.g. WARDGATE_AGENT_KEY_BILLING), ORCHESTRATOR_DB,
    ORCHESTRATOR_MCP_SERVER

Tools run in this process unless ``mcp_server`` names the gateway's MCP server that serves
them: then every tool call goes through the gateway's ``/mcp/{mcp_server}`` (mcp_client.py).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field

#: Load mode's runs in flight by default. A run has up to four steps calling at once, and one
#: gateway worker answers a call in a few ms of CPU: three runs keep it past 10,000 calls/min,
#: while more only queue calls behind each other (latency = calls in flight / throughput),
#: so the percentiles would measure the queue instead of the gateway.
LOAD_CONCURRENCY = 3


def default_model() -> str:
    """The mock model offline, a small real model when an OpenAI key is around."""
    explicit = os.environ.get("ORCHESTRATOR_MODEL")
    if explicit:
        return explicit
    return "gpt-4o-mini" if os.environ.get("OPENAI_API_KEY") else "mock-chat"


class AgentConfig(BaseModel):
    key: str | None = None
    model: str | None = None


class OrchestratorConfig(BaseModel):
    base_url: str = "http://127.0.0.1:8080/v1"
    #: Key for agents that have none of their own.
    api_key: str | None = None
    #: Admin key (role approver/auditor/admin) for auto-approval in the demo and audit reads.
    admin_key: str | None = None
    model: str = Field(default_factory=default_model)
    agents: dict[str, AgentConfig] = Field(default_factory=dict)
    #: Steps of one run in flight at once (the run's semaphore).
    max_concurrency: int = Field(default=4, ge=1)
    #: Wall-clock limit of one step attempt (model calls, tools and any approval wait).
    step_timeout_s: float = Field(default=300.0, gt=0)
    #: Attempts per step after transient failures (the SDK's own retries happen inside each).
    step_attempts: int = Field(default=2, ge=1)
    #: HTTP timeout of one model call; must exceed the gateway's approval ``hold_s``.
    call_timeout_s: float = Field(default=600.0, gt=0)
    #: Retries the openai SDK makes on 429 (honouring retry-after), 5xx and connection errors.
    max_retries: int = Field(default=4, ge=0)
    #: Model calls per step before the worker gives up on finishing.
    max_rounds: int = Field(default=8, ge=1)
    #: Deferred approvals: how often to poll, how long to wait before withdrawing.
    approval_poll_s: float = Field(default=0.5, gt=0)
    approval_wait_s: float = Field(default=900.0, gt=0)
    #: Workers call their tools through the gateway's ``/mcp/{mcp_server}`` (e.g. ``crm``) instead
    #: of running them in this process: the gateway then judges each call where it acts.
    mcp_server: str | None = None
    #: Where ``/mcp/...`` is served (default: ``base_url`` without its ``/v1``).
    mcp_url: str | None = None
    #: SQLite checkpoint file (``:memory:`` for throwaway runs).
    db_path: str = ".wardgate/orchestrator.db"
    #: Characters of an earlier step's result handed to the steps that depend on it.
    context_chars: int = Field(default=2000, ge=100)

    def key_for(self, agent: str) -> str:
        cfg = self.agents.get(agent)
        key = (cfg.key if cfg else None) or self.api_key
        if not key:
            raise ValueError(f"no virtual key for agent {agent!r}: set agents.{agent}.key or api_key")
        return key

    def mcp_base_url(self) -> str:
        if self.mcp_url:
            return self.mcp_url.rstrip("/")
        base = self.base_url.rstrip("/")
        return base.removesuffix("/v1")

    def model_for(self, agent: str) -> str:
        cfg = self.agents.get(agent)
        return (cfg.model if cfg else None) or self.model


def load_config(path: Path | None = None, **overrides: Any) -> OrchestratorConfig:
    """Defaults, then the YAML file, then the environment, then explicit overrides (CLI flags)."""
    doc: dict[str, Any] = {}
    if path is not None:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    env = os.environ
    for field, var in (
        ("base_url", "WARDGATE_BASE_URL"),
        ("api_key", "WARDGATE_API_KEY"),
        ("admin_key", "WARDGATE_ADMIN_KEY"),
        ("db_path", "ORCHESTRATOR_DB"),
        ("mcp_server", "ORCHESTRATOR_MCP_SERVER"),
    ):
        if env.get(var):
            doc[field] = env[var]
    agents = dict(doc.get("agents") or {})
    for var, value in env.items():
        if var.startswith("WARDGATE_AGENT_KEY_") and value:
            name = var.removeprefix("WARDGATE_AGENT_KEY_").lower()
            agents[name] = {**(agents.get(name) or {}), "key": value}
    doc["agents"] = agents
    doc.update({k: v for k, v in overrides.items() if v is not None})
    return OrchestratorConfig.model_validate(doc)
