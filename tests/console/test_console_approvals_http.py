"""The approvals pages over plain HTTP: what each role sees and may do, and the server refusing
what the page does not offer (the browser tests click the same pages)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.console.console_app import SELF_APPROVER_KEY, SUPPORT_KEY, pending_ids, transfer
from tests.harness import ADMIN_KEY, APPROVER_KEY, AUDITOR_KEY, RunningGateway
from tests.waiting import wait_until

XSS = "<script>alert(1)</script>[conceal]<img src=x onerror=alert(2)>"


@pytest.fixture
def held(console_gateway: RunningGateway, upstream: Any) -> Iterator[Any]:
    """``held(args, run=...)``: an agent call held for approval: ``(future, approval_id)``."""
    pool = ThreadPoolExecutor(4)
    futures: list[Future[Any]] = []

    def start(args: dict[str, Any], run: str = "run-http") -> tuple[Future[Any], str]:
        before = set(pending_ids(console_gateway.url))
        upstream.script_tool_call("transfer_funds", args)
        future = pool.submit(transfer, console_gateway.url, args, run=run)
        futures.append(future)

        def found() -> set[str]:
            if future.done():  # ended without being held: say how
                raise AssertionError(
                    f"the agent's call was not held: {future.exception() or future.result()}"
                )
            return set(pending_ids(console_gateway.url)) - before

        new = wait_until(found, within=60, interval=0.05, message="no approval pending")
        return future, new.pop()

    yield start
    for approval_id in pending_ids(console_gateway.url):
        httpx.post(
            f"{console_gateway.url}/admin/approvals/{approval_id}/deny",
            headers={"authorization": f"Bearer {ADMIN_KEY}"},
            json={"comment": "test cleanup"},
        )
    for future in futures:
        future.exception(timeout=30)
    pool.shutdown()


def test_inbox_and_detail_per_role(held, as_role) -> None:
    future, approval_id = held({"amount": 5000, "to": "ACME"})
    auditor, approver, support = as_role(AUDITOR_KEY), as_role(APPROVER_KEY), as_role(SUPPORT_KEY)
    for client in (auditor, approver, support):
        inbox = client.get("/console/approvals")
        assert inbox.status_code == 200 and f'data-approval="{approval_id}"' in inbox.text
    page = auditor.get(f"/console/approvals/{approval_id}").text
    assert "Approve</button>" not in page and "Deny</button>" not in page
    assert "may read approvals but not decide them" in page
    assert "transfer_funds" in page and "&#34;ACME&#34;" in page and "finance" in page
    page = approver.get(f"/console/approvals/{approval_id}").text
    assert "Approve</button>" in page and "Deny</button>" in page and "0 of 1" in page
    assert "high" in page.lower() or "approval" in page.lower()  # the policy's reason is listed
    page = support.get(f"/console/approvals/{approval_id}").text
    assert "Approve</button>" not in page and "needs a reviewer from group finance" in page
    assert not future.done()


def test_the_server_refuses_what_the_page_does_not_offer(held, as_role) -> None:
    future, approval_id = held({"amount": 5000, "to": "ACME"})
    auditor, support, me = as_role(AUDITOR_KEY), as_role(SUPPORT_KEY), as_role(SELF_APPROVER_KEY)
    refused = auditor.post(f"/console/approvals/{approval_id}/approve", {"comment": "x"})
    assert refused.status_code == 403 and "lacks the role" in refused.text
    refused = support.post(f"/console/approvals/{approval_id}/approve")
    assert refused.status_code == 403 and "group finance" in refused.text
    # four-eyes: "tester" holds the agent key; the page says why, the server refuses
    page = me.get(f"/console/approvals/{approval_id}").text
    assert "Four-eyes: you (tester) caused this approval" in page and "neither approve nor deny" in page
    assert "Approve</button>" not in page and "Deny</button>" not in page
    for decision in ("approve", "deny"):
        refused = me.post(f"/console/approvals/{approval_id}/{decision}", {"comment": "mine"})
        assert (
            refused.status_code == 403 and "Four-eyes" in refused.text and "approve or deny" in refused.text
        )
    api = httpx.post(  # the admin API refuses the requester's denial too
        f"{me.url}/admin/approvals/{approval_id}/deny",
        headers={"authorization": f"Bearer {SELF_APPROVER_KEY}"},
        json={"comment": "mine"},
    )
    assert api.status_code == 403 and api.json()["error"]["code"] == "self_approval_forbidden"
    # CSRF: a reviewer who may decide, without the token
    approver = as_role(APPROVER_KEY)
    refused = approver.post(f"/console/approvals/{approval_id}/approve", csrf="nope")
    assert refused.status_code == 403 and "CSRF" in refused.text
    assert approval_id in pending_ids(approver.url) and not future.done()


def test_approve_in_the_console_releases_the_held_call(held, as_role) -> None:
    future, approval_id = held({"amount": 5000, "to": "ACME"})
    done = as_role(APPROVER_KEY).post(f"/console/approvals/{approval_id}/approve", {"comment": "ok"})
    assert done.status_code == 303 and done.headers["location"].endswith("?decided=approved")
    inbox = as_role(AUDITOR_KEY)
    wait_until(lambda: approval_id not in inbox.get("/console/approvals/rows").text, message="still listed")
    completion = future.result(timeout=30)
    call = completion.choices[0].message.tool_calls[0]
    assert call.function.name == "transfer_funds" and '"ACME"' in call.function.arguments


def test_model_and_reviewer_text_shows_literally(held, as_role) -> None:
    future, approval_id = held({"amount": 5000, "to": XSS})
    approver = as_role(APPROVER_KEY)
    page = approver.get(f"/console/approvals/{approval_id}").text
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;[conceal]&lt;img src=x onerror=alert(2)&gt;" in page
    done = approver.post(f"/console/approvals/{approval_id}/deny", {"comment": XSS})
    assert done.status_code == 303
    page = approver.get(done.headers["location"]).text
    assert "<script>alert(1)" not in page and '<span id="decision-comment">&lt;script&gt;' in page
    completion = future.result(timeout=30)  # the agent reads the denial and the comment
    message = completion.choices[0].message
    assert not message.tool_calls and "denied by a reviewer" in (message.content or "")


def test_agent_ids_with_markup_never_reach_the_queue(console_gateway: RunningGateway) -> None:
    from tests.console.console_app import agent_client

    with pytest.raises(Exception) as refused:
        agent_client(console_gateway.url).chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "hi"}],
            extra_headers={"X-Agent-Id": "<script>alert(1)</script>"},
        )
    assert getattr(refused.value, "status_code", None) == 400


def test_unknown_and_malformed_ids_answer_the_404_page(as_role) -> None:
    client = as_role(APPROVER_KEY)
    for path in (
        "/console/approvals/apr_0123456789abcdef01234567",
        "/console/approvals/<x>",
        "/console/approvals/apr_ZZ",
    ):
        r = client.get(path)
        assert r.status_code == 404 and "Not found" in r.text and "Traceback" not in r.text
    r = client.post("/console/approvals/apr_0123456789abcdef01234567/approve")
    assert r.status_code == 404


def test_filters_narrow_the_inbox(held, as_role) -> None:
    _, first = held({"amount": 5000, "to": "ACME"}, run="run-filter-a")
    _, second = held({"amount": 6000, "to": "ACME"}, run="run-filter-b")
    client = as_role(ADMIN_KEY)
    page = client.get("/console/approvals?run=run-filter-a").text
    assert first in page and second not in page
    rows = client.get(
        "/console/approvals/rows?tool=transfer_funds&group=finance&team=test&agent=agent-7"
    ).text
    assert first in rows and second in rows
    assert "No pending approvals match" in client.get("/console/approvals/rows?tool=delete_db").text
    assert client.get("/console/approvals?team=" + "x" * 300).status_code == 400


def test_the_live_stream_says_when_an_approval_changes(
    console_gateway: RunningGateway, held, as_role
) -> None:
    client = as_role(AUDITOR_KEY)
    seen: list[str] = []
    with client.http.stream("GET", "/console/approvals/events", timeout=30) as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        _, approval_id = held({"amount": 5000, "to": "ACME"})
        for line in stream.iter_lines():
            seen.append(line)
            if approval_id in line:
                break
    assert "event: changed" in seen and any(re.search(approval_id, s) for s in seen)
