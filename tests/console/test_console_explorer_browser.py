"""The run explorer, spend and audit pages in Debian's Chromium, on the reference orchestrator's
support scenario (``python -m orchestrator demo``'s run: a denied deletion, redacted e-mails,
a refund approved by the support lead), with content capture on for the agents' team.

Checks what an auditor must see (the denial, the redaction and the approval, each with its
reason), that the spend chart draws from data, that model-written tool arguments show
literally, and axe-core (zero serious or critical) on every page; screenshots go to
``.artifacts/console/``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from playwright.sync_api import expect

from orchestrator.admin_client import AdminClient
from orchestrator.approver import AutoApprover
from orchestrator.config import AgentConfig, load_config
from orchestrator.identity import new_run_id
from orchestrator.local_gateway import TEAM, LocalGateway
from orchestrator.scenario import get_scenario
from orchestrator.service import Orchestrator

XSS_ARGS = "<script>alert('tool')</script> [conceal] <img src=x onerror=alert(2)>"


class CapturingGateway(LocalGateway):
    """The demo's gateway with content capture on for the agents' team."""

    def _config(self) -> dict[str, Any]:
        config = super()._config()
        path = Path(config["policies_dir"]) / "policy.yaml"
        doc = yaml.safe_load(path.read_text())
        doc.setdefault("teams", {}).setdefault(TEAM, {})["capture"] = True
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        return config


async def _support_run(gateway: LocalGateway, tmp: Path) -> str:
    config = load_config(
        None,
        base_url=gateway.base_url,
        admin_key=gateway.keys.admin,
        db_path=str(tmp / "orchestrator.db"),
        agents={a: AgentConfig(key=k) for a, k in gateway.keys.agents.items()},
    )
    run_id = new_run_id()
    admin = AdminClient(config.base_url, config.admin_key)
    approver = AutoApprover(admin, run_id=run_id, interactive=False, deny=False, notify=lambda *a: None)
    stop = asyncio.Event()
    approving = asyncio.create_task(approver.run(stop))
    try:
        async with Orchestrator(config) as orch:
            report = await orch.start(get_scenario("support"), run_id=run_id)
    finally:
        stop.set()
        await approving
        await admin.close()
    assert report.status == "completed", report.to_dict()
    return run_id


def _tool_call_with_markup(gateway: LocalGateway, run_id: str) -> None:
    """A model-written tool call whose arguments are markup (the mock fills the schema's const)."""
    client = openai.OpenAI(base_url=gateway.base_url, api_key=gateway.keys.agents["writer"], max_retries=0)
    tool = {
        "type": "function",
        "function": {
            "name": "take_note",
            "parameters": {
                "type": "object",
                "properties": {"text": {"type": "string", "const": XSS_ARGS}},
                "required": ["text"],
            },
        },
    }
    client.chat.completions.create(
        model="mock-chat",
        messages=[{"role": "user", "content": "take a note"}],
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "take_note"}},
        extra_headers={"x-run-id": run_id + "-xss", "x-agent-id": "writer"},
    )


def _in_thread(coro: Any) -> Any:
    """Run ``coro`` on a loop of its own (this thread may already run one: the browser's)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalGateway, str]]:
    root = tmp_path_factory.mktemp("explorer")
    gateway = CapturingGateway(root / "gw")
    _in_thread(gateway.start(timeout_s=180))
    try:
        run_id = _in_thread(_support_run(gateway, root))
        _tool_call_with_markup(gateway, run_id)
        yield gateway, run_id
    finally:
        gateway.stop()


@pytest.fixture
def page(browser: Any, demo: tuple[LocalGateway, str]) -> Iterator[Any]:
    gateway, _ = demo
    context = browser.new_context(base_url=gateway.url)
    context.set_default_timeout(15_000)
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto("/console/login")
    page.get_by_label("Admin key").fill(gateway.keys.admin)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url("**/console/")
    yield page
    assert dialogs == [], f"a script ran: {dialogs}"
    context.close()


def test_the_support_run_shows_denial_redaction_and_approval_with_reasons(
    page: Any, demo: tuple[LocalGateway, str], axe_check: Any, shot: Any
) -> None:
    _, run_id = demo
    page.goto("/console/runs?window=1h")
    page.get_by_role("link", name=run_id, exact=True).click()
    page.wait_for_url(f"**/console/runs/{run_id}")
    text = page.locator("main").inner_text()
    assert "deleting customer records is never done by an agent" in text  # the denial's reason
    assert re.search(r"redacted \d+ EMAIL_ADDRESS", text)  # the redaction, from redact_in
    assert "large refunds need a support lead" in text and "approved" in text  # the approval
    # the why panel of the first policy decision opens with the keyboard
    summary = page.get_by_text("Why: what the policy saw and did").first
    summary.focus()
    page.keyboard.press("Enter")  # the panel loads when opened (htmx): the page renders the timeline only
    expect(page.locator("details.why").first).to_contain_text("Input summary")
    captured = page.get_by_text("What the agent saw (content capture)").first
    captured.click()
    if "Not captured" not in text:
        expect(page.locator("details.capture").first).to_contain_text("<EMAIL_ADDRESS_")
    axe_check(page)
    shot(page, "runs_detail_support")
    page.goto("/console/runs?window=1h")
    axe_check(page)
    shot(page, "runs_list")


def test_tool_arguments_show_literally(
    page: Any, demo: tuple[LocalGateway, str], axe_check: Any, shot: Any
) -> None:
    _, run_id = demo
    page.goto(f"/console/runs/{run_id}-xss")
    page.get_by_text("What the agent saw (content capture)").first.click()
    expect(page.locator("details.capture").first).to_contain_text("Answer (redacted)")
    assert XSS_ARGS in page.locator("main").inner_text()
    assert page.locator("main script").count() == 0 and page.locator("main img").count() == 0
    axe_check(page)
    shot(page, "runs_detail_xss")


def test_spend_chart_draws_with_data(page: Any, axe_check: Any, shot: Any) -> None:
    page.goto("/console/spend?window=24h&group_by=agent")
    chart = page.locator("#spend-chart")
    chart.locator("canvas").wait_for()
    assert chart.get_attribute("data-drawn") == "true"
    assert "billing" in page.locator("main").inner_text()
    axe_check(page)
    shot(page, "spend")


def test_audit_pages_are_accessible(
    page: Any, demo: tuple[LocalGateway, str], axe_check: Any, shot: Any
) -> None:
    _, run_id = demo
    page.goto(f"/console/audit?run={run_id}")
    assert page.locator("tbody tr").count() > 5
    axe_check(page)
    shot(page, "audit")
    page.locator("tbody tr a[href*='/audit/events/']").first.click()
    axe_check(page)
    shot(page, "audit_event")
    page.goto("/console/audit/chains")
    page.get_by_role("button", name="Verify every chain now").click()
    page.wait_for_url("**/console/audit/chains")
    assert "intact" in page.locator("main").inner_text()
    axe_check(page)
    shot(page, "audit_chains")


def test_keys_and_policies_pages_are_accessible(page: Any, axe_check: Any, shot: Any) -> None:
    page.goto("/console/keys")
    page.get_by_label("Team (required)").fill("browser-made")
    page.get_by_label("Key id").fill("browser-made-1")
    page.get_by_role("button", name="Create key").click()
    assert page.locator("#new-key").inner_text().startswith("wg-")
    axe_check(page)
    shot(page, "keys_created")
    page.goto("/console/policies")
    page.get_by_role("button", name="Evaluate against the active revision").click()
    assert "Decision:" in page.locator("main").inner_text()
    axe_check(page)
    shot(page, "policies")
