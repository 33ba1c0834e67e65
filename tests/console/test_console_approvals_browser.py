"""The approvals inbox in Debian's Chromium: live arrival while the agent's SDK call is held,
approve and deny with a comment, four-eyes with two reviewers in two contexts, CSRF and role
refusals, text that tries to be markup, and axe on every page (screenshots: .artifacts/console/).

One browser for the module, a context per reviewer; the agent is the real openai SDK in a thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.console.console_app import SELF_APPROVER_KEY, SUPPORT2_KEY, SUPPORT_KEY, pending_ids, transfer
from tests.harness import ADMIN_KEY, RunningGateway
from tests.waiting import wait_until

XSS = "<script>alert(1)</script>[conceal]<img src=x onerror=alert(2)>"
#: Records, in the page, when each inbox row first appears (Date.now(), ms): installed through
#: the DevTools protocol, like axe; the page's own CSP allows no inline script.
WATCH_ROWS = """() => {
  window.__seen = {};
  const note = () => document.querySelectorAll('tr[data-approval]').forEach(tr => {
    const id = tr.getAttribute('data-approval');
    if (!(id in window.__seen)) { window.__seen[id] = Date.now(); }
  });
  note();
  new MutationObserver(note).observe(document.body, {childList: true, subtree: true});
}"""


@pytest.fixture
def agent(console_gateway: RunningGateway, upstream: Any) -> Iterator[Any]:
    """``agent(args, tool=..., run=...)``: the agent's SDK call, in a thread: a Future."""
    pool = ThreadPoolExecutor(4)
    futures: list[Future[Any]] = []

    def call(args: dict[str, Any], tool: str = "transfer_funds", run: str = "run-browser") -> Future[Any]:
        upstream.script_tool_call(tool, args)
        future = pool.submit(transfer, console_gateway.url, args, run=run, tool=tool)
        futures.append(future)
        return future

    yield call
    for approval_id in pending_ids(console_gateway.url):
        httpx.post(
            f"{console_gateway.url}/admin/approvals/{approval_id}/deny",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            json={"comment": "test cleanup"},
        )
    for future in futures:
        future.exception(timeout=30)
    pool.shutdown()


def _approval(url: str, approval_id: str) -> dict[str, Any]:
    r = httpx.get(f"{url}/admin/approvals/{approval_id}", headers={"authorization": f"Bearer {ADMIN_KEY}"})
    return dict(r.json())


def _new_pending(url: str, before: set[str], call: Future[Any]) -> str:
    def found() -> set[str]:
        if call.done():  # the call ended without being held: say how
            raise AssertionError(f"the agent's call was not held: {call.exception() or call.result()}")
        return set(pending_ids(url)) - before

    return str(wait_until(found, within=60, interval=0.05, message="no approval became pending").pop())


def test_sign_in_per_role_and_axe_on_the_sign_in_and_home_pages(
    browser: Any, console_gateway: RunningGateway, signed_in, axe_check, shot
) -> None:
    context = browser.new_context(base_url=console_gateway.url)
    login = context.new_page()
    login.goto("/console/login")
    axe_check(login)
    shot(login, "login")
    login.get_by_label("Admin key").fill("wg-not-a-key")
    login.get_by_role("button", name="Sign in").click()
    assert "not an admin key" in login.get_by_role("alert").inner_text()
    context.close()
    for role, user in (("admin", "root-admin"), ("approver", "reviewer"), ("auditor", "auditor")):
        page = signed_in(role)
        assert f"Signed in as {user}" in page.locator(".who").inner_text()
        nav = page.get_by_role("navigation", name="Main")
        assert nav.get_by_role("link", name="Approvals").count() == 1
        axe_check(page)
        shot(page, f"home-{role}")
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url("**/console/login")
        page.goto("/console/approvals")
        assert "/console/login" in page.url  # signed out: back to the sign-in page


def test_an_approval_appears_live_and_approving_it_releases_the_sdk_call(
    console_gateway: RunningGateway, agent, signed_in, axe_check, shot
) -> None:
    page = signed_in("approver")
    page.goto("/console/approvals")
    page.wait_for_selector("#inbox-live[data-live='on']")
    page.evaluate(WATCH_ROWS)
    page.evaluate("() => { window.__no_reload = true; }")
    before = set(pending_ids(console_gateway.url))
    future = agent({"amount": 5000, "to": "ACME"})
    approval_id = _new_pending(console_gateway.url, before, future)
    row = page.locator(f'tr[data-approval="{approval_id}"]')
    row.wait_for(timeout=5000)
    created = _approval(console_gateway.url, approval_id)["created_at"]
    seen_ms = page.evaluate(f"() => window.__seen['{approval_id}']")
    latency = seen_ms / 1000 - created
    assert latency <= 1.0, f"appeared {latency:.3f} s after its creation"
    assert page.evaluate("() => window.__no_reload") is True  # no reload happened
    expect(page.locator("#inbox-count")).to_have_text(re.compile(r"^[1-9][0-9]* pending"))
    axe_check(page)
    shot(page, "inbox")
    row.get_by_role("link", name="transfer_funds").click()
    page.wait_for_url(f"**/console/approvals/{approval_id}")
    assert "ACME" in page.locator(".tool-call pre").inner_text()
    assert "transfers above the limit need a finance approver" in page.locator("#reasons").inner_text()
    assert page.locator("#run-summary").count() == 1  # the run so far (audit log)
    axe_check(page)
    shot(page, "approval-detail")
    assert not future.done()
    page.get_by_label("Comment (the agent reads a denial's comment)").fill("invoice checked")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url("**?decided=approved")
    assert page.locator("#approval-status").inner_text() == "approved"
    completion = future.result(timeout=30)
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "transfer_funds" and "ACME" in call.function.arguments
    shot(page, "approval-approved")


def test_deny_with_a_comment_reaches_the_agent(console_gateway: RunningGateway, agent, signed_in) -> None:
    page = signed_in("admin")
    before = set(pending_ids(console_gateway.url))
    future = agent({"amount": 7000, "to": "ACME"})
    approval_id = _new_pending(console_gateway.url, before, future)
    page.goto(f"/console/approvals/{approval_id}")
    page.get_by_label("Comment (the agent reads a denial's comment)").fill("wrong account")
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url("**?decided=denied")
    assert page.locator("#decision-comment").inner_text() == "wrong account"
    message = future.result(timeout=30).choices[0].message
    assert not message.tool_calls and "wrong account" in (message.content or "")


def test_four_eyes_with_two_reviewers_in_two_contexts(
    console_gateway: RunningGateway, agent, signed_in, shot
) -> None:
    first, second = signed_in(SUPPORT_KEY), signed_in(SUPPORT2_KEY)
    before = set(pending_ids(console_gateway.url))
    future = agent({"order_id": "A1", "amount": 500}, tool="issue_refund")
    approval_id = _new_pending(console_gateway.url, before, future)
    first.goto(f"/console/approvals/{approval_id}")
    first.get_by_role("button", name="Approve").click()
    first.wait_for_url("**?decided=approved")
    assert first.locator("#approval-status").inner_text() == "pending"  # one of two
    assert "support-lead approved" in first.locator("#votes").inner_text()
    assert "already approved" in first.locator("#why-not").inner_text()
    assert first.get_by_role("button", name="Approve").count() == 0
    assert not future.done()
    second.goto(f"/console/approvals/{approval_id}")
    assert second.locator("#vote-count").inner_text() == "1 of 2"
    assert "support-lead approved" in second.locator("#votes").inner_text()
    shot(second, "four-eyes-second-reviewer")
    second.get_by_role("button", name="Approve").click()
    second.wait_for_url("**?decided=approved")
    assert second.locator("#approval-status").inner_text() == "approved"
    assert future.result(timeout=30).choices[0].message.tool_calls[0].function.name == "issue_refund"


def test_refusals_in_the_browser_csrf_roles_and_unknown_ids(
    console_gateway: RunningGateway, agent, signed_in, axe_check, shot
) -> None:
    before = set(pending_ids(console_gateway.url))
    future = agent({"amount": 5000, "to": "ACME"})
    approval_id = _new_pending(console_gateway.url, before, future)
    auditor = signed_in("auditor")
    auditor.goto(f"/console/approvals/{approval_id}")
    assert auditor.get_by_role("button", name="Approve").count() == 0
    assert "may read approvals but not decide" in auditor.locator("#why-not").inner_text()
    shot(auditor, "approval-auditor")
    # four-eyes: "tester" holds the agent key that made this call; the page says why it
    # offers neither decision (the server refuses both: the HTTP tests)
    mine = signed_in(SELF_APPROVER_KEY)
    mine.goto(f"/console/approvals/{approval_id}")
    assert "neither approve nor deny" in mine.locator("#why-not").inner_text()
    assert mine.get_by_role("button", name="Approve").count() == 0
    assert mine.get_by_role("button", name="Deny").count() == 0
    shot(mine, "approval-own-four-eyes")
    approver = signed_in("approver")
    approver.goto(f"/console/approvals/{approval_id}")
    approver.evaluate("() => document.querySelector('form.decide input[name=csrf_token]').value = 'forged'")
    approver.get_by_role("button", name="Approve").click()
    approver.wait_for_load_state()
    assert "CSRF check failed" in approver.locator("main").inner_text()
    axe_check(approver)
    shot(approver, "csrf-403")
    assert approval_id in pending_ids(console_gateway.url)
    approver.goto("/console/approvals/apr_00000000000000000000dead")
    assert "Not found" in approver.locator("h1").inner_text()
    axe_check(approver)
    shot(approver, "not-found")


def test_markup_in_tool_arguments_and_comments_shows_literally(
    console_gateway: RunningGateway, agent, signed_in, shot
) -> None:
    page = signed_in("approver")
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    before = set(pending_ids(console_gateway.url))
    future = agent({"amount": 5000, "to": XSS})
    approval_id = _new_pending(console_gateway.url, before, future)
    page.goto(f"/console/approvals/{approval_id}")
    assert XSS in page.locator(".tool-call pre").inner_text()
    page.get_by_label("Comment (the agent reads a denial's comment)").fill(XSS)
    page.get_by_role("button", name="Deny").click()
    page.wait_for_url("**?decided=denied")
    assert page.locator("#decision-comment").inner_text() == XSS
    shot(page, "xss-literal")
    page.goto("/console/approvals")
    # nothing to wait for: a script would have run while the pages loaded
    assert dialogs == [] and page.locator("img[src=x]").count() == 0
    future.exception(timeout=30)
