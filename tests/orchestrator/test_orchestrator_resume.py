"""Crash and resume: completed tool calls are never executed again.

The in-process test crashes the orchestrator inside a tool, right after its side effect and
before the ledger recorded it (the worst moment), with a BaseException that nothing in the
orchestrator catches, as a killed process would not run any handler either. The systems
behind the tools (``SupportBackend``) outlive the crash, like a real payment provider. The
CLI test kills ``python -m orchestrator run`` with SIGKILL while the refund waits for its
approval, then continues it with ``python -m orchestrator resume``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from orchestrator.admin_client import AdminClient
from orchestrator.approver import AutoApprover
from orchestrator.scenario import SupportBackend, get_scenario
from orchestrator.service import Orchestrator
from orchestrator.tools import Tool, ToolBox
from tests.harness import REPO
from tests.orchestrator.conftest import AGENT_KEYS, ORCH_ADMIN_KEY, make_config, resume_reviewed, run_reviewed
from tests.waiting import wait_until_async


class SimulatedCrash(BaseException):
    """Stands for the process dying: not an Exception, so no handler in the orchestrator sees it."""


def crashing_after_effect(scenario: Any, tool_name: str) -> Any:
    """The scenario with ``tool_name`` crashing once, right after doing its work."""
    crashed: list[bool] = []
    original = scenario.tools.get(tool_name)

    async def fn(args: dict[str, Any], ctx: Any) -> Any:
        result = await original(args, ctx)
        if not crashed:
            crashed.append(True)
            raise SimulatedCrash(f"killed inside {tool_name}")
        return result

    tools = [
        dataclasses.replace(original, fn=fn) if n == tool_name else scenario.tools.get(n)
        for n in scenario.tools.names()
    ]
    return dataclasses.replace(scenario, tools=ToolBox(t for t in tools if isinstance(t, Tool)))


async def test_crash_mid_run_then_resume_executes_no_completed_tool_again(hold_gateway, tmp_path: Path):
    backend = SupportBackend()
    config = make_config(hold_gateway, tmp_path / "o.db")
    with pytest.raises(SimulatedCrash):
        await run_reviewed(
            config, scenario=crashing_after_effect(get_scenario("support", backend), "send_email")
        )
    async with Orchestrator(config) as orch:
        (run,) = await orch.store.list_runs()
    assert run.status == "running"  # as a crash leaves it
    before = dict(backend.invocations)
    report = await resume_reviewed(config, run.run_id, get_scenario("support", backend))

    assert report.status == "completed", report.to_dict()
    for tool in ("lookup_order", "search_kb", "issue_refund"):
        assert backend.ran(tool) == 1, tool  # completed before the crash: not touched by the resume
    assert {k: v for k, v in backend.invocations.items() if k[0] != "send_email"} == {
        k: v for k, v in before.items() if k[0] != "send_email"
    }
    # The interrupted send_email ran again with the same idempotency key: one email, not two.
    (key,) = [k for k in backend.invocations if k[0] == "send_email"]
    assert backend.invocations[key] == 2 and len(backend.sent) == 1
    assert len(backend.refunds) == 1
    assert report.step("reply").status == "done" and report.review is not None
    assert [e["kind"] for e in report.events].count("resumed") == 1


def _cli(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _step_status(db: Path, run_id: str, step: str) -> str | None:
    if not db.exists():
        return None
    with sqlite3.connect(db) as conn:
        row = conn.execute(
            "SELECT status FROM steps WHERE run_id = ? AND step_id = ?", (run_id, step)
        ).fetchone()
    return row[0] if row else None


async def test_cli_resume_after_sigkill_while_waiting_for_approval(hold_gateway, tmp_path: Path):
    db, run_id = tmp_path / "cli.db", "run-cli-resume-test"
    env = {
        **os.environ,
        "WARDGATE_BASE_URL": hold_gateway.base_url,
        "ORCHESTRATOR_MODEL": "mock-chat",
        **{f"WARDGATE_AGENT_KEY_{a.upper()}": k for a, k in AGENT_KEYS.items()},
    }
    proc = _cli("run", "--run-id", run_id, "--db", str(db), "--json", env=env)
    admin = AdminClient(hold_gateway.base_url, ORCH_ADMIN_KEY)
    try:

        async def held_after_research() -> bool:  # killed once the refund is held and research is done
            assert proc.poll() is None, proc.stderr.read().decode()  # type: ignore[union-attr]
            return (
                bool(await admin.pending_approvals(run_id)) and _step_status(db, run_id, "research") == "done"
            )

        await wait_until_async(
            held_after_research, within=20, interval=0.05, message="the run never reached its approval"
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait()

        approver = AutoApprover(admin, run_id=run_id, poll_s=0.05)
        stop = asyncio.Event()
        approving = asyncio.create_task(approver.run(stop))
        resumed = _cli("resume", run_id, "--db", str(db), "--json", env=env)
        out, err = await asyncio.to_thread(resumed.communicate, timeout=60)
        stop.set()
        await approving
    finally:
        await admin.close()
        if proc.poll() is None:
            proc.kill()
    assert resumed.returncode == 0, err.decode()[-3000:]
    report = orjson.loads(out)
    assert report["status"] == "completed"
    runs = {t["name"]: t["executions"] for t in report["tools"]}
    assert runs == {"lookup_order": 1, "search_kb": 1, "issue_refund": 1, "send_email": 1}
    assert {s["id"]: s["status"] for s in report["steps"]}["account"] == "denied"
