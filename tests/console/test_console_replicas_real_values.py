"""Two replicas sharing Redis: a console session made on one works on the other (sessions follow
the approvals onto Redis), an approval held by one appears in the other's inbox, and only the
approval's reviewers see the caller's real (redacted) values there; approving on B releases A."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import openai
import pytest
import redis as redis_sync

from tests.console.console_app import SUPPORT_KEY, Browserless, console_settings
from tests.harness import APPROVER_KEY, AUDITOR_KEY, TEST_KEY, RunningGateway, running_gateway
from tests.waiting import wait_until

IBAN = "DE89370400440532013000"
PLACEHOLDER = "<IBAN_CODE_1>"


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, fake_upstream: Any, redis_url: str) -> Iterator[Any]:
    import uuid

    prefix = f"wgtest:{uuid.uuid4().hex[:12]}"
    root = tmp_path_factory.mktemp("replicas")
    shared = {"backend": "redis", "redis_url": redis_url, "key_prefix": prefix}
    made = []
    for name, redaction in (("a", True), ("b", False)):
        settings = console_settings(
            root / name, fake_upstream.base_url, approvals=shared, redaction={"enabled": redaction}
        )
        settings.data_dir = root / "data"  # one approvals sealing key for both, as replicas share it
        made.append(settings)
    with running_gateway(made[0]) as a, running_gateway(made[1]) as b:
        yield a, b
    client = redis_sync.Redis.from_url(redis_url)
    for key in client.scan_iter(match="{" + prefix + ":*", count=500):
        client.delete(key)
    client.close()


def test_a_session_made_on_one_replica_works_on_the_other(replicas: Any) -> None:
    a, b = replicas
    client = Browserless(a.url, APPROVER_KEY)
    cookie = client.http.cookies.get("wardgate_console", path="/console")
    other = httpx.Client(base_url=b.url, cookies={"wardgate_console": cookie})
    try:
        assert "Signed in as <strong>reviewer</strong>" in other.get("/console/").text
        assert client.post("/console/logout").status_code == 303
        assert other.get("/console/").status_code == 303  # ended everywhere
    finally:
        other.close()
        client.close()


def test_reviewers_on_the_other_replica_see_the_real_values_and_approve(
    replicas: tuple[RunningGateway, RunningGateway], upstream: Any
) -> None:
    a, b = replicas
    upstream.script_tool_call("transfer_funds", {"amount": 5000, "to": PLACEHOLDER})
    agent = openai.OpenAI(base_url=a.base_url, api_key=TEST_KEY, timeout=60, max_retries=0)
    finance, support, auditor = (
        Browserless(b.url, APPROVER_KEY),
        Browserless(b.url, SUPPORT_KEY),
        Browserless(b.url, AUDITOR_KEY),
    )
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            agent.chat.completions.create,
            model="gpt-test",
            messages=[{"role": "user", "content": f"Pay 5000 EUR to {IBAN}"}],
            tools=[
                {"type": "function", "function": {"name": "transfer_funds", "parameters": {"type": "object"}}}
            ],
            extra_headers={"X-Run-Id": "run-replicas"},
        )
        rows = wait_until(
            lambda: "data-approval=" in (text := finance.get("/console/approvals/rows").text) and text,
            within=60,
            message="no approval in the other replica's inbox",
        )
        approval_id = rows.split('data-approval="', 1)[1].split('"', 1)[0]
        real = finance.get(f"/console/approvals/{approval_id}").text
        assert IBAN in real and "Real argument values" in real
        for reviewer in (support, auditor):
            page = reviewer.get(f"/console/approvals/{approval_id}").text
            assert IBAN not in page and "&lt;IBAN_CODE_1&gt;" in page and "placeholders" in page
        assert finance.post(f"/console/approvals/{approval_id}/approve").status_code == 303
        call = future.result(timeout=30).choices[0].message.tool_calls[0]
    assert call.function.name == "transfer_funds"
    for client in (finance, support, auditor):
        client.close()
