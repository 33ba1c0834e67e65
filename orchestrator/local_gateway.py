"""A throwaway local gateway for the demo and load mode: embedded defaults, private keys.

It runs ``wardgate serve`` (``python -m gateway serve``) in a child process on a free port,
with a private copy of the repository's ``policies/`` and ``rego/`` in a temporary
directory, to which it adds:

* one virtual key per agent (team ``support-bots``, each with its own daily budget) and an
  admin key for the demo's reviewer (role ``admin``, every approver group), generated fresh
  and never written anywhere in plain text;
* a price for ``mock-chat`` when the pricing data has none (priced like gpt-4o-mini, so the
  demo shows costs; the mock itself costs nothing);
* the approval mode for ``issue_refund`` (``hold`` or ``defer``) in ``wardgate.yaml``;
* with ``load=True``: no per-key budgets and request/token rates nobody reaches, so load
  mode measures the gateway's work with every guard on, not the example limits;
* with ``mcp={"crm": url}``: ``mcp.yaml`` naming those MCP servers (the team may use them),
  and the team's high-stakes tools judged where they run (``high_stakes_at: mcp``): its
  agents act through ``/mcp``, so a refund is held once, at the MCP call, not again on the
  model's proposal.

The process itself is started, awaited and stopped by ``gateway.http.launch`` (the launcher
the tests and the benches use too); the orchestrator talks to it over HTTP only, like to
any other gateway.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateway.http.launch import GatewayProcess, free_port

REPO = Path(__file__).resolve().parents[1]
TEAM = "support-bots"
AGENTS = ("planner", "researcher", "billing", "accounts", "writer", "reviewer")
MOCK_PRICE = {"input_per_mtok": 0.15, "output_per_mtok": 0.60}


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class DemoKeys:
    agents: dict[str, str] = field(
        default_factory=lambda: {a: f"wg-{a}-{secrets.token_hex(16)}" for a in AGENTS}
    )
    admin: str = field(default_factory=lambda: f"wg-admin-{secrets.token_hex(16)}")


def _load(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    return doc if isinstance(doc, dict) else {}


#: Load mode: the limits guard stays on, with rates no load generator reaches, so the numbers
#: measure the gateway's work rather than the example limits (600 requests/min per key, ...).
LOAD_LIMITS: dict[str, Any] = {
    "scopes": {
        kind: {"requests_per_minute": 10**9, "tokens_per_minute": 10**15} for kind in ("key", "agent", "run")
    },
}


def _merged(base: Any, override: Any) -> Any:
    if isinstance(base, dict) and isinstance(override, dict):
        return {**base, **{k: _merged(base.get(k), v) for k, v in override.items()}}
    return override


def prepare_policies(
    root: Path,
    keys: DemoKeys,
    *,
    budget_usd: float | None = 5.0,
    limits: dict[str, Any] | None = None,
    mcp: dict[str, str] | None = None,
) -> tuple[Path, Path]:
    """Copy policies/ and rego/ under ``root`` and add the demo's keys, prices and limits."""
    source = REPO / "policies"
    if not source.is_dir():
        raise FileNotFoundError(f"{source} not found: run from a Wardgate checkout, or pass --base-url")
    policies, rego = root / "policies", root / "rego"
    shutil.copytree(source, policies, dirs_exist_ok=True)
    if (REPO / "rego").is_dir():
        shutil.copytree(REPO / "rego", rego, dirs_exist_ok=True)
    else:
        rego.mkdir(parents=True, exist_ok=True)
    doc = _load(policies / "keys.yaml")
    doc.setdefault("keys", [])
    budgets = {"budgets": {"usd": {"day": budget_usd}}} if budget_usd is not None else {}
    doc["keys"] = list(doc["keys"] or []) + [
        {
            "id": f"orchestrator-{agent}",
            "sha256": _sha(key),
            "team": TEAM,
            "user": f"{agent}-bot",
            "roles": [agent],
            "models": ["*"],
            **budgets,
        }
        for agent, key in keys.agents.items()
    ]
    lead = {
        "id": "orchestrator-lead",
        "sha256": _sha(keys.admin),
        "user": "demo-support-lead",
        "roles": ["admin"],
        "groups": ["*"],
    }
    doc["admin_keys"] = [*(doc.get("admin_keys") or []), lead]
    (policies / "keys.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    pricing = _load(policies / "pricing.yaml")
    models = dict(pricing.get("models") or {})
    if "mock-chat" not in models and "mock-chat" not in (pricing.get("aliases") or {}):
        models["mock-chat"] = MOCK_PRICE
        pricing["models"] = models
        pricing["free"] = [p for p in pricing.get("free") or [] if p not in ("mock-*", "mock-chat")]
        (policies / "pricing.yaml").write_text(yaml.safe_dump(pricing, sort_keys=False))
    if limits:
        merged = _merged(_load(policies / "limits.yaml"), limits)
        (policies / "limits.yaml").write_text(yaml.safe_dump(merged, sort_keys=False))
    if mcp is not None:
        servers = {name: {"url": url, "timeout_s": 10, "teams": [TEAM]} for name, url in mcp.items()}
        (policies / "mcp.yaml").write_text(yaml.safe_dump({"servers": servers}, sort_keys=False))
        policy = _merged(_load(policies / "policy.yaml"), {"teams": {TEAM: {"high_stakes_at": "mcp"}}})
        (policies / "policy.yaml").write_text(yaml.safe_dump(policy, sort_keys=False))
    return policies, rego


class LocalGateway:
    """The demo's gateway: ``prepare_policies`` + config, started by ``gateway.http.launch``."""

    def __init__(
        self,
        root: Path,
        *,
        approval_mode: str = "hold",
        hold_s: float = 60.0,
        command: str | None = None,
        keys: DemoKeys | None = None,
        extra_config: dict[str, Any] | None = None,
        load: bool = False,
        mcp: dict[str, str] | None = None,
    ) -> None:
        self.root = root
        self.keys = keys or DemoKeys()
        self.port = free_port()
        self.approval_mode = approval_mode
        self.hold_s = hold_s
        self.command = command
        self.extra_config = extra_config or {}
        self.load = load
        self.mcp = mcp
        self.process: GatewayProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The gateway's child process (None before ``spawn``)."""
        return self.process.proc if self.process is not None else None

    def _config(self) -> dict[str, Any]:
        if self.load:
            policies, rego = prepare_policies(
                self.root, self.keys, budget_usd=None, limits=LOAD_LIMITS, mcp=self.mcp
            )
        else:
            policies, rego = prepare_policies(self.root, self.keys, mcp=self.mcp)
        config: dict[str, Any] = {
            "server": {"log_level": "warning"},
            "policies_dir": str(policies),
            "rego_dir": str(rego),
            "data_dir": str(self.root / "data"),
            "approvals": {"tools": {"issue_refund": {"mode": self.approval_mode, "hold_s": self.hold_s}}},
        }
        for section, values in self.extra_config.items():
            config[section] = {**config.get(section, {}), **values} if isinstance(values, dict) else values
        return config

    def _argv(self) -> list[str]:
        if self.command:
            return shlex.split(self.command.format(port=self.port, python=sys.executable))
        return [sys.executable, "-m", "gateway", "serve", "--host", "127.0.0.1", "--port", str(self.port)]

    def spawn(self) -> None:
        """Write the config and start the child process (returns at once)."""
        self.process = GatewayProcess(
            self._config(),
            self.root,
            env={"TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS": ""},
            argv=self._argv(),
            port=self.port,
            cwd=REPO,
        ).spawn()

    async def start(self, timeout_s: float = 60.0) -> LocalGateway:
        """Spawn the gateway and wait until it answers ``/healthz``."""
        await asyncio.to_thread(self.spawn)
        if self.process is None:
            raise RuntimeError("the gateway process did not start")
        await asyncio.to_thread(self.process.wait_ready, timeout_s)
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def logs(self) -> str:
        return self.process.logs() if self.process is not None else ""
