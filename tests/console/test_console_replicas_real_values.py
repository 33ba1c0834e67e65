"""Two replicas sharing Redis: a console session made on one works on the other (sessions follow
the approvals onto Redis), an approval held by one appears in the other's inbox, and only the
approval's reviewers see the caller's real (redacted) values there; approving on B releases A.
Failed sign-ins counted on one replica refuse sign-ins on the other (the throttle on Redis)."""

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
THROTTLE_WINDOW_S = 4.0


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory, fake_upstream: Any, redis_url: str) -> Iterator[Any]:
    import uuid

    prefix = f"wgtest:{uuid.uuid4().hex[:12]}"
    root = tmp_path_factory.mktemp("replicas")
    shared = {"backend": "redis", "redis_url": redis_url, "key_prefix": prefix}
    made = []
    for name, redaction in (("a", True), ("b", False)):
        settings = console_settings(
            root / name,
            fake_upstream.base_url,
            approvals=shared,
            redaction={"enabled": redaction},
            # the sign-in throttle test: counts on the shared Redis (as the sessions), a short window
            console={"signin_max_failures_per_ip": 3, "signin_window_s": THROTTLE_WINDOW_S},
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


def test_brute_force_on_one_replica_is_refused_on_the_other_until_the_window_ends(replicas: Any) -> None:
    import time

    a, b = replicas
    guesser = Browserless(a.url)
    started = time.monotonic()
    for i in range(3):
        done = guesser.sign_in(f"wg-admin-guess-{i:04d}")
        assert done.status_code == 401 and "not an admin key" in done.text
    # the limit is reached: even the right key is refused, on the other replica too, without a session
    legit = Browserless(b.url)
    refused = legit.sign_in(APPROVER_KEY)
    assert refused.status_code == 429 and "wardgate_console=" not in refused.headers.get("set-cookie", "")
    assert "Too many failed sign-ins from this address" in refused.text
    retry_after = int(refused.headers["retry-after"])
    assert 1 <= retry_after <= THROTTLE_WINDOW_S
    assert guesser.sign_in("wg-admin-guess-more").status_code == 429
    # audited on the replica that saw the failures: each failure, the last one reaching the limit
    events = httpx.get(
        f"{a.url}/admin/audit",
        params={"kind": "admin", "limit": "50"},
        headers={"authorization": f"Bearer {AUDITOR_KEY}"},
    ).json()["data"]
    failed = [e["data"] for e in events if (e.get("data") or {}).get("action") == "console.sign_in_failed"]
    assert len(failed) == 3 and all(f["client"] == "127.0.0.1" for f in failed)
    assert sorted(f["failures"]["ip"] for f in failed) == [1, 2, 3]
    assert [f["throttled"] for f in failed if f["failures"]["ip"] == 3] == [["ip"]]
    assert not any("guess" in str(f) for f in failed)  # never the key
    # after the window the legitimate user gets in
    time.sleep(max(0.0, started + THROTTLE_WINDOW_S - time.monotonic()))
    wait_until(lambda: legit.sign_in(APPROVER_KEY).status_code == 303, within=THROTTLE_WINDOW_S, interval=0.2)
    assert "Signed in as" in legit.get("/console/").text
    guesser.close()
    legit.close()
