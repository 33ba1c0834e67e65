"""Printing a run with rich: live progress while it runs, then the whole story.

Each section prints what the gateway told us; where a gateway feature is missing (no audit
log, no approvals queue, no admin key) it prints why the section is empty instead.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from orchestrator.admin_client import Unavailable
from orchestrator.events import CallRecord, Listener
from orchestrator.report import RunReport

STATUS_STYLE = {
    "done": "green",
    "denied": "red",
    "failed": "red",
    "stopped": "yellow",
    "cancelled": "yellow",
    "skipped": "dim",
    "running": "cyan",
    "pending": "dim",
    "completed": "green",
}


def _cut(text: Any, n: int = 110) -> str:
    s = " ".join(str(text or "").split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _style(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


class LiveListener(Listener):
    """Prints steps, calls and approvals as they happen."""

    def __init__(self, console: Console, *, calls: bool = True) -> None:
        self.console = console
        self.calls = calls

    def call_finished(self, record: CallRecord) -> None:
        if not self.calls:
            return
        code = f" {record.code}" if record.code else ""
        tokens = (record.usage or {}).get("total_tokens")
        extra = f", {tokens} tokens" if tokens else ""
        self.console.print(
            f"  [dim]· {record.agent:<10} → HTTP {record.status}{code} "
            f"({record.latency_s * 1000:.0f} ms{extra})[/]"
        )

    def step_changed(self, run_id: str, step_id: str, status: str, detail: dict[str, Any]) -> None:
        agent = detail.get("agent", "")
        if status == "running":
            self.console.print(f"[cyan]▶[/] step [bold]{step_id}[/] ({agent}) started")
            return
        err = detail.get("error") or {}
        why = "; ".join(err.get("reasons") or []) or err.get("message") or ""
        self.console.print(
            f"{'[green]✔' if status == 'done' else '[red]✖'}[/] step [bold]{step_id}[/] "
            f"{_style(status)}{': ' + _cut(why, 140) if why else ''}"
        )

    async def approval_pending(self, run_id: str, agent: str, approval_id: str, mode: str) -> None:
        self.console.print(
            f"[yellow]⏸[/] {agent} waits for approval [bold]{approval_id}[/] "
            + ("(defer: polling)" if mode == "defer" else "(hold: the call waits at the gateway)")
        )

    async def approval_decided(self, run_id: str, agent: str, approval_id: str, outcome: str) -> None:
        self.console.print(f"[yellow]⏵[/] approval [bold]{approval_id}[/] for {agent}: {_style(outcome)}")


def approver_notice(console: Console) -> Callable[[str, dict[str, Any]], None]:
    def notify(event: str, info: dict[str, Any]) -> None:
        if event == "approval_requested":
            calls = "\n".join(
                f"  {c.get('name')}({_cut(c.get('arguments'), 120)})" for c in info.get("tool_calls") or []
            )
            console.print(
                Panel(
                    f"[bold]{info.get('id')}[/] from agent [bold]{info.get('agent_id')}[/] "
                    f"(run {info.get('run_id')})\nwhy: {'; '.join(info.get('reasons') or [])}\n"
                    f"what:\n{calls}\ngroups: {', '.join(info.get('groups') or []) or 'any approver'}",
                    title="approval requested",
                    border_style="yellow",
                )
            )
        elif event == "approval_decided":
            console.print(
                f"[yellow]⚖[/] reviewer {info.get('decided_by') or ''} {_style(info.get('status', '?'))} "
                f"{info.get('id')}: {info.get('comment') or ''}"
            )
        elif event in ("approval_not_decided", "approvals_unavailable"):
            console.print(f"[yellow]![/] approvals: {info.get('reason')}")

    return notify


def print_report(
    console: Console,
    report: RunReport,
    *,
    timeline: Any = None,
    spend: Any = None,
    sent: list[dict[str, Any]] | None = None,
) -> None:
    console.rule(f"run {report.run_id}: {report.status}")
    if report.plan_notes:
        console.print(f"[yellow]plan:[/] {'; '.join(report.plan_notes)}")
    steps = Table("step", "agent", "status", "tries", "result / reason", title="Steps", title_justify="left")
    for s in report.steps:
        err = s.error or {}
        text = s.result or "; ".join(err.get("reasons") or []) or err.get("message") or ""
        steps.add_row(s.id, s.agent, _style(s.status), str(s.attempts), _cut(text, 90))
    console.print(steps)
    _denials(console, report)
    _approvals(console, report)
    _redactions(console, timeline, sent)
    _tools(console, report)
    _costs(console, report, spend)
    _timeline(console, timeline)
    if report.review:
        console.print(
            f"[bold]reviewer:[/] {report.review.get('verdict')} — {_cut(report.review.get('notes'), 160)}"
        )
    if report.outcome:
        console.print(
            Panel(
                f"{report.outcome.get('reason')}: {report.outcome.get('message', '')}",
                title="run stopped",
                border_style="red",
            )
        )


def _denials(console: Console, report: RunReport) -> None:
    if not report.denials:
        console.print("[dim]Policy denials: none (is the policy engine on?)[/]")
        return
    table = Table("step", "agent", "code", "reasons", title="Policy denials", title_justify="left")
    for d in report.denials:
        table.add_row(
            d.get("step", ""), d.get("agent", ""), d.get("code") or "", "\n".join(d.get("reasons") or [])
        )
    console.print(table)


def _approvals(console: Console, report: RunReport) -> None:
    if not report.approvals:
        console.print("[dim]Approvals: none requested (are approvals on?)[/]")
        return
    table = Table(
        "approval",
        "step",
        "mode",
        "outcome",
        "why",
        "reviewer comment",
        title="Approvals",
        title_justify="left",
    )
    for a in report.approvals:
        table.add_row(
            a.get("id", ""),
            a.get("step", ""),
            a.get("mode", ""),
            _style(str(a.get("outcome"))),
            _cut("; ".join(a.get("reasons") or []), 60),
            _cut(a.get("comment") or "", 40),
        )
    console.print(table)


def _redactions(console: Console, timeline: Any, sent: list[dict[str, Any]] | None) -> None:
    if isinstance(timeline, Unavailable) or not timeline:
        console.print(f"[dim]Redactions: no audit timeline ({getattr(timeline, 'reason', 'not fetched')})[/]")
    else:
        table = Table(
            "time",
            "agent",
            "redacted before the model saw it",
            title="Redactions (per call)",
            title_justify="left",
        )
        for s in timeline.get("steps") or []:
            entities = (s.get("redaction") or {}).get("entities") or {}
            if entities:
                table.add_row(
                    str(s.get("time", ""))[11:23],
                    s.get("agent_id") or "",
                    ", ".join(f"{n} × {e}" for e, n in sorted(entities.items())),
                )
        console.print(table if table.row_count else "[dim]Redactions: nothing was redacted[/]")
    for mail in sent or []:
        console.print(
            Panel(
                f"to: {mail['to']}\nsubject: {_cut(mail['subject'], 100)}\n\n{_cut(mail['body'], 400)}",
                title="email sent (placeholders restored by the gateway)",
                border_style="green",
            )
        )


def _tools(console: Console, report: RunReport) -> None:
    table = Table(
        "tool", "step", "status", "executions", "tool-call id", title="Tools executed", title_justify="left"
    )
    for t in report.tools:
        table.add_row(t.name, t.step, t.status, str(t.executions), t.id)
    console.print(table if report.tools else "[dim]No tools ran[/]")


def _costs(console: Console, report: RunReport, spend: Any) -> None:
    rows = {r["group"]: r for r in spend.get("data") or []} if isinstance(spend, dict) else {}
    table = Table(
        "agent",
        "calls",
        "refused",
        "tokens in",
        "tokens out",
        "cost (USD)",
        title="Cost per agent",
        title_justify="left",
    )
    for agent, u in sorted(report.usage.items()):
        cost = rows.get(agent, {}).get("cost_usd")
        table.add_row(
            agent,
            str(u.calls),
            str(u.refused),
            str(u.prompt_tokens),
            str(u.completion_tokens),
            f"{cost:.6f}" if isinstance(cost, int | float) else "n/a",
        )
    console.print(table)
    if isinstance(spend, dict):
        console.print(f"total cost of the run: [bold]${(spend.get('total') or {}).get('cost_usd', 0):.6f}[/]")
    else:
        console.print(
            f"[dim]cost from the audit log unavailable: {getattr(spend, 'reason', 'not fetched')}[/]"
        )


#: MCP requests that are a session's plumbing, not an action (left out of the timeline table).
_MCP_PLUMBING = frozenset({"initialize", "notifications/initialized", None})


def _timeline(console: Console, timeline: Any) -> None:
    if isinstance(timeline, Unavailable) or not timeline:
        console.print(f"[dim]Audit timeline unavailable: {getattr(timeline, 'reason', 'not fetched')}[/]")
        return
    table = Table(
        "#",
        "time",
        "agent",
        "event",
        "tools",
        "ms",
        "USD",
        title=f"Audit timeline of {timeline.get('run_id')}",
        title_justify="left",
    )
    shown = 0
    for s in timeline.get("steps") or []:
        kind = str(s.get("kind", ""))
        mcp = (s.get("data") or {}).get("mcp") if kind == "mcp" else None
        if isinstance(mcp, dict) and mcp.get("method") in _MCP_PLUMBING:
            continue  # the session's handshake and end: one line per action is enough
        shown += 1
        event = _style(str(s.get("decision") or "")) if kind == "call" else kind
        approval = (s.get("approval") or {}).get("status")
        if approval and kind == "call":
            event += f" (approval {approval})"
        cost = (s.get("cost") or {}).get("settled_usd")
        latency = (s.get("latency_ms") or {}).get("total") if isinstance(s.get("latency_ms"), dict) else None
        tools = ", ".join(t.get("name", "") for t in s.get("tool_calls") or [])
        if isinstance(mcp, dict):  # a tool call at the point of action, through /mcp/{server}
            event = f"mcp {mcp.get('method')} " + _style(str(s.get("decision") or ""))
            tools = f"{mcp.get('server')}/{mcp.get('target') or ''}"
            latency = mcp.get("latency_ms")
        table.add_row(
            str(shown),
            str(s.get("time", ""))[11:23],
            s.get("agent_id") or "",
            event,
            tools,
            f"{latency:.1f}" if isinstance(latency, int | float) else "",
            f"{cost:.6f}" if isinstance(cost, int | float) else "",
        )
    console.print(table)
    summary = timeline.get("summary") or {}
    console.print(
        f"audit summary: {summary.get('calls')} calls, {summary.get('denied')} denied, "
        f"{summary.get('tool_calls')} tool calls, ${summary.get('cost_usd', 0):.6f}"
    )
