"""``python -m orchestrator demo``: the support scenario end to end, printed with rich.

Without ``--base-url`` it starts a local gateway on embedded defaults (no network, no API
key: the built-in mock model), runs the scenario, plays the support lead who approves the
refund through the admin API (or asks you, with ``--interactive``), then prints the steps,
the policy denials with their reasons, the redactions, the approval, the cost per agent and
the run's audit timeline. With ``OPENAI_API_KEY`` set the agents use a real model.

``tools="mcp"`` (the default): the workers reach their tools through the gateway's
``/mcp/crm``, the sample ``crm`` MCP server (orchestrator/mcp_servers/) running in this
process on a free port, so the refund is held and the deletion refused at the point of
action, the MCP ``tools/call``. ``tools="local"`` runs them in process (the gateway then
judges the tool calls the model proposes). With ``--base-url`` and ``mcp``, the gateway's own
``mcp.yaml`` must name a ``crm`` server.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console

from orchestrator.admin_client import AdminClient
from orchestrator.approver import AutoApprover
from orchestrator.config import AgentConfig, OrchestratorConfig, load_config
from orchestrator.identity import new_run_id
from orchestrator.local_gateway import LocalGateway
from orchestrator.mcp_servers import crm_server
from orchestrator.render import LiveListener, approver_notice, print_report
from orchestrator.scenario import get_scenario
from orchestrator.service import Orchestrator


async def run_demo(
    *,
    base_url: str | None = None,
    interactive: bool = False,
    approval_mode: str = "hold",
    model: str | None = None,
    deny: bool = False,
    keep: bool = False,
    gateway_command: str | None = None,
    config_path: Path | None = None,
    console: Console | None = None,
    tools: str = "mcp",
) -> int:
    """Run the demo; returns the process exit code (0 when the run completed)."""
    console = console or Console()
    workdir = Path(tempfile.mkdtemp(prefix="wardgate-demo-"))
    gateway: LocalGateway | None = None
    hold_s = 300.0 if interactive else 60.0
    servers = contextlib.ExitStack()
    backend: Any = None
    mcp_server = "crm" if tools == "mcp" else None
    try:
        if base_url:
            config = load_config(
                config_path,
                base_url=base_url,
                model=model,
                db_path=str(workdir / "orchestrator.db"),
                mcp_server=mcp_server,
            )
        else:
            console.print("[bold]Starting a local Wardgate[/] (embedded defaults, mock model, no network)…")
            mcp: dict[str, str] | None = None
            if mcp_server:
                crm = crm_server()
                backend = crm.backend
                mcp = {"crm": servers.enter_context(crm.serve())}
                console.print(f"[bold]Sample MCP server[/] crm on {mcp['crm']} (tools go through /mcp/crm)")
            gateway = LocalGateway(
                workdir, approval_mode=approval_mode, hold_s=hold_s, command=gateway_command, mcp=mcp
            )
            await gateway.start()
            config = load_config(
                config_path,
                base_url=gateway.base_url,
                admin_key=gateway.keys.admin,
                model=model,
                db_path=str(workdir / "orchestrator.db"),
                agents={a: AgentConfig(key=k) for a, k in gateway.keys.agents.items()},
                mcp_server=mcp_server,
            )
        config = config.model_copy(update={"step_timeout_s": max(config.step_timeout_s, hold_s + 60)})
        return await _run(
            console,
            config,
            interactive=interactive,
            deny=deny,
            mode=approval_mode if gateway else "as configured on the gateway",
            backend=backend,
        )
    finally:
        if gateway is not None:
            gateway.stop()
        servers.close()
        if keep:
            console.print(f"[dim]kept {workdir} (checkpoints, gateway config, audit db, gateway.log)[/]")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def _run(
    console: Console,
    config: OrchestratorConfig,
    *,
    interactive: bool,
    deny: bool,
    mode: str,
    backend: Any = None,
) -> int:
    run_id = new_run_id()
    scenario = get_scenario("support", backend)
    where = f"through /mcp/{config.mcp_server}" if config.mcp_server else "in process"
    console.print(
        f"gateway [bold]{config.base_url}[/], model [bold]{config.model}[/], approvals {mode}, "
        f"tools {where}, run [bold]{run_id}[/]"
    )
    console.print(f"[dim]{scenario.task}[/]\n")
    admin = AdminClient(config.base_url, config.admin_key)
    if interactive:
        console.print(
            f"[yellow]You are the reviewer.[/] Approve here, or elsewhere with the admin key:\n"
            f"  curl -X POST {admin.url}/admin/approvals/<id>/approve -H 'Authorization: Bearer "
            f'{config.admin_key}\' -d \'{{"comment":"ok"}}\'\n'
        )
    approver = AutoApprover(
        admin, run_id=run_id, interactive=interactive, deny=deny, notify=approver_notice(console)
    )
    stop = asyncio.Event()
    approving = asyncio.create_task(approver.run(stop))
    try:
        async with Orchestrator(config, listener=LiveListener(console)) as orch:
            report = await orch.start(scenario, run_id=run_id)
    finally:
        stop.set()
        await approving
    timeline = await admin.run_timeline(run_id)
    spend = await admin.spend("agent", run=run_id)
    await admin.close()
    print_report(console, report, timeline=timeline, spend=spend, sent=list(scenario.backend.sent.values()))
    return 0 if report.status == "completed" else 1
