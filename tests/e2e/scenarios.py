"""The production scenarios, run against a ``Topology`` (one Redis, or a Redis Cluster).

Each function drives the topology over real HTTP (the ``openai`` SDK, through HAProxy or to
one replica directly) and asserts the operator's promise; the test modules choose which
scenarios run on which topology.
"""

from __future__ import annotations

import asyncio
import http.client
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import httpx
import openai
import orjson

from gateway.call import Call, Endpoint
from gateway.limits.config import EstimateSettings
from gateway.limits.estimate import prompt_upper_bound
from gateway.limits.pricing import PriceBook
from gateway.limits.redis_store import RedisStore
from gateway.limits.store import usd_to_nano
from tests import raw_http
from tests.approvals.e2e_app import TRANSFER_ARGS as APPROVAL_ARGS
from tests.approvals.e2e_app import TRANSFER_MESSAGES as APPROVAL_MESSAGES
from tests.approvals.e2e_app import TRANSFER_TOOLS as TOOLS
from tests.e2e.topology import RACE_BUDGET_USD, RACE_KEY, Topology
from tests.harness import ADMIN_KEY, APPROVER_KEY, TEST_KEY
from tests.waiting import wait_until

RACE_MESSAGES = [{"role": "user", "content": "Summarise the quarterly report for the board. " * 9}]
RACE_MAX_TOKENS = 120


def race_unit(topology: Topology) -> tuple[int, int]:
    """(prompt tokens, nano-USD) one race call reserves: the gateway's own estimate of it."""
    body = {"messages": RACE_MESSAGES, "model": "gpt-test", "max_tokens": RACE_MAX_TOKENS}
    call = Call(request_id="x", endpoint=Endpoint.CHAT, body=body, headers={}, model="gpt-test")
    prompt = prompt_upper_bound(call, EstimateSettings(), 128_000)
    price = PriceBook.load(topology.policies / "pricing.yaml").lookup("gpt-test")
    return prompt, price.cost_nano(prompt, RACE_MAX_TOKENS)


async def _race_call(client: openai.AsyncOpenAI) -> tuple[str, str]:
    """(outcome, replica) of one race call through the load balancer."""
    try:
        raw = await client.chat.completions.with_raw_response.create(
            model="gpt-test", messages=RACE_MESSAGES, max_tokens=RACE_MAX_TOKENS
        )
        return "ok", raw.headers.get("x-e2e-server", "?")
    except openai.RateLimitError as exc:
        code = exc.body.get("code", "429") if isinstance(exc.body, dict) else "429"
        return str(code), exc.response.headers.get("x-e2e-server", "?")


async def _spent(topology: Topology) -> tuple[int, int]:
    """(spent, reserved) of the race key once every settle has landed (read from Redis)."""
    reader = RedisStore(topology.redis_url, prefix=topology.prefix, mode=topology.redis_mode)
    try:

        async def settled() -> tuple[int, int] | None:
            state = await reader.scope_state("race", "key", "race")
            return (state.spent_nano["total"], 0) if state.reserved_nano == 0 else None

        for _ in range(400):
            got = await settled()
            if got is not None:
                return got
            await asyncio.sleep(0.05)
        state = await reader.scope_state("race", "key", "race")
        return state.spent_nano["total"], state.reserved_nano
    finally:
        await reader.close()


def budget_race(topology: Topology, upstream: Any, calls: int = 60) -> dict[str, Any]:
    """``calls`` concurrent calls on one budget through HAProxy: exactly the affordable number
    succeed, from both replicas, and the spend never exceeds the budget."""
    prompt, unit = race_unit(topology)
    upstream.usage(prompt, RACE_MAX_TOKENS)  # every call costs exactly its reservation
    budget = usd_to_nano(RACE_BUDGET_USD)
    affordable = budget // unit
    assert affordable < calls, (affordable, calls)

    async def run() -> list[tuple[str, str]]:
        client = openai.AsyncOpenAI(base_url=topology.base_url, api_key=RACE_KEY, max_retries=0, timeout=60)
        try:
            return await asyncio.gather(*(_race_call(client) for _ in range(calls)))
        finally:
            await client.close()

    results = asyncio.run(run())
    outcomes = Counter(outcome for outcome, _ in results)
    served_ok = Counter(server for outcome, server in results if outcome == "ok")
    # Both replicas took part in the race (each admitted or refused calls on the one budget).
    # Which replica's calls won the affordable slots is timing: on a loaded machine one
    # replica's reservations can land first for all of them (seen: 20 of 20 on a).
    served = Counter(server for _, server in results)
    spent, reserved = asyncio.run(_spent(topology))
    assert reserved == 0, f"reservations still open: {reserved}"
    assert outcomes["ok"] == affordable, outcomes
    assert set(outcomes) <= {"ok", "budget_exceeded", "budget_reserved"}, outcomes
    assert spent == affordable * unit <= budget, (spent, affordable, unit, budget)
    assert len(served) == len(topology.names), f"one replica served every call: {served}"
    return {"outcomes": outcomes, "served": served_ok, "spent": spent}


def _pending(url: str) -> str:
    data = wait_until(
        lambda: httpx.get(
            url + "/admin/approvals?status=pending", headers={"authorization": f"Bearer {APPROVER_KEY}"}
        ).json()["data"],
        within=30,
        interval=0.05,
        message="no approval became pending",
    )
    return str(data[0]["id"])


def _tool_call(base_url: str) -> Any:
    client = openai.OpenAI(base_url=base_url, api_key=TEST_KEY, timeout=60, max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=APPROVAL_MESSAGES, tools=TOOLS
    )


def approval_across_replicas(topology: Topology, upstream: Any) -> None:
    """A call held for approval on replica a is approved through replica b and resumes on a."""
    first, second = (topology.replicas[n] for n in topology.names[:2])
    upstream.script_tool_call("transfer_funds", APPROVAL_ARGS, times=1)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(_tool_call, first.base_url)
        approval_id = _pending(second.url)
        answer = httpx.post(
            f"{second.url}/admin/approvals/{approval_id}/approve",
            json={"comment": "ok"},
            headers={"authorization": f"Bearer {APPROVER_KEY}"},
            timeout=30,
        )
        assert answer.status_code == 200, answer.text
        raw = held.result(60)
    assert raw.headers["x-wardgate-approval"] == "approved"
    call = raw.parse().choices[0].message.tool_calls[0]
    assert orjson.loads(call.function.arguments) == APPROVAL_ARGS


def _held(url: str) -> float:
    """A replica's held requests (``wardgate_approvals_held_requests``, summed over its workers)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    lines = [ln for ln in text.splitlines() if ln.startswith("wardgate_approvals_held_requests")]
    return sum(float(ln.split()[-1]) for ln in lines)


def approval_answer_across_replicas(topology: Topology, upstream: Any) -> None:
    """A held call whose client left replica a is approved on b and re-sent to b: b opens the
    answer a stored (sealed with the shared ``WARDGATE_APPROVALS_KEY``), once, without calling
    the model again. Without one key for every replica b answered 503 approval_answer_unavailable."""
    first, second = (topology.replicas[n] for n in topology.names[:2])
    upstream.script_tool_call("transfer_funds", APPROVAL_ARGS, times=1)
    calls_before = upstream.request_count
    body = orjson.dumps({"model": "gpt-test", "messages": APPROVAL_MESSAGES, "tools": TOOLS})
    headers = {"Authorization": f"Bearer {TEST_KEY}", "Content-Type": "application/json"}
    sock = raw_http.connect(first.url)
    try:
        sock.sendall(raw_http.head("POST", "/v1/chat/completions", headers, len(body)) + body)
        approval_id = _pending(second.url)
        wait_until(lambda: _held(first.url) == 1, within=30, interval=0.1, message="a never held the call")
    finally:
        sock.close()  # the client gives up; its answer waits in the store
    wait_until(lambda: _held(first.url) == 0, within=30, interval=0.1, message="a kept holding a gone client")
    reviewer = {"authorization": f"Bearer {APPROVER_KEY}"}
    approved = httpx.post(f"{second.url}/admin/approvals/{approval_id}/approve", headers=reviewer, timeout=30)
    assert approved.status_code == 200, approved.text
    client = openai.OpenAI(base_url=second.base_url, api_key=TEST_KEY, timeout=60, max_retries=0)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test",
        messages=APPROVAL_MESSAGES,
        tools=TOOLS,
        extra_headers={"X-Wardgate-Approval-Id": approval_id},
    )
    assert raw.headers["x-wardgate-approval"] == "approved"
    assert orjson.loads(raw.parse().choices[0].message.tool_calls[0].function.arguments) == APPROVAL_ARGS
    assert upstream.request_count == calls_before + 1  # the stored answer, not a second model call
    record = httpx.get(f"{second.url}/admin/approvals/{approval_id}", headers=reviewer, timeout=30).json()
    assert (record["status"], record["uses"]) == ("approved", 1), record


def _status(url: str, key: str) -> int:
    """One request on a fresh connection (a new connection may land on either worker).

    Plain ``http.client``: an httpx client per probe costs tens of ms of CPU (its SSL context),
    which on a busy machine would be most of what the revocation test measures."""
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=10)
    try:
        conn.request("GET", "/v1/models", headers={"authorization": f"Bearer {key}", "connection": "close"})
        return conn.getresponse().status
    finally:
        conn.close()


def revocation_everywhere(topology: Topology, per_target: int = 2) -> float:
    """A key created on replica a works everywhere; revoked on a, it is refused by every
    worker of every replica and through the load balancer within 1 s. Returns the seconds."""
    a = topology.replicas[topology.names[0]]
    admin = {"authorization": f"Bearer {ADMIN_KEY}"}
    created = httpx.post(a.url + "/admin/keys", json={"team": "e2e", "id": "e2e-revoke"}, headers=admin)
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    targets = [topology.url, *(p.url for p in topology.replicas.values())] * per_target

    def everywhere(status: int) -> bool:
        return all(_status(url, key) == status for url in targets)

    wait_until(
        lambda: everywhere(200), within=15, interval=0.05, message="the new key never worked everywhere"
    )

    def refused_after(url: str, t0: float) -> float:
        """Seconds from ``t0`` until ``url`` first refuses the key (polled in parallel, so the
        measurement does not queue behind the other targets)."""
        while _status(url, key) != 401:
            assert time.monotonic() - t0 < 10, f"{url} still accepts the revoked key"
        return time.monotonic() - t0

    with ThreadPoolExecutor(len(targets)) as pool:
        revoked = httpx.delete(a.url + "/admin/keys/e2e-revoke", headers=admin, timeout=30)
        assert revoked.status_code == 200, revoked.text
        t0 = time.monotonic()  # from the revocation's answer: it is committed in the backend
        times = list(pool.map(lambda url: refused_after(url, t0), targets))
    elapsed = max(times)
    assert everywhere(401), "a worker accepted the revoked key again"
    assert elapsed < 1.0, f"revocation took {elapsed:.3f} s to reach every worker: {sorted(times)}"
    return elapsed
