"""Two gateway processes sharing Redis: a hold on one released through the other; a crash mid-hold."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis as redis_sync
from cryptography.fernet import Fernet

from tests.approvals.e2e_app import approvals_settings
from tests.approvals.test_approvals_e2e import ARGS, MESSAGES, TOOLS
from tests.harness import APPROVER_KEY, TEST_KEY, GatewayProcess, stop_all
from tests.waiting import wait_until


@dataclass
class Replicas:
    first: GatewayProcess
    second: GatewayProcess
    victim: GatewayProcess  # killed by the crash test


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, fake_upstream: Any, redis_url: str
) -> Iterator[Replicas]:
    """Three gateway processes on one Redis prefix and one answer key, started in parallel."""
    root = tmp_path_factory.mktemp("approvals-processes")
    prefix = f"wgtest:{uuid.uuid4().hex[:12]}"
    env = {"WARDGATE_APPROVALS_KEY": Fernet.generate_key().decode()}
    settings = approvals_settings(
        root, fake_upstream.base_url, backend="redis", redis_url=redis_url, key_prefix=prefix, hold_s=30
    )
    config = settings.model_dump(mode="json")
    procs = [GatewayProcess(config, root, env=env).spawn() for _ in range(3)]
    try:
        for proc in procs:
            proc.wait_ready(90)
        yield Replicas(*procs)
    finally:
        stop_all(procs)
        client = redis_sync.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match="{" + prefix + ":apr}:*", count=500))
        if keys:
            client.delete(*keys)
        client.close()


def _pending(url: str) -> str:
    data = wait_until(
        lambda: httpx.get(
            url + "/admin/approvals?status=pending", headers={"authorization": f"Bearer {APPROVER_KEY}"}
        ).json()["data"],
        interval=0.05,
        message="no approval became pending",
    )
    return data[0]["id"]


def _approve(url: str, approval_id: str) -> httpx.Response:
    return httpx.post(
        f"{url}/admin/approvals/{approval_id}/approve",
        json={"comment": "ok"},
        headers={"authorization": f"Bearer {APPROVER_KEY}"},
    )


def _chat(base_url: str, **kw: Any) -> Any:
    client = openai.OpenAI(base_url=base_url, api_key=TEST_KEY, timeout=30, max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=MESSAGES, tools=TOOLS, **kw
    )


def test_a_hold_on_one_process_is_released_by_an_approval_through_the_other(
    replicas: Replicas, upstream
) -> None:
    first, second = replicas.first, replicas.second
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(_chat, first.base_url)
        approval_id = _pending(second.url)
        assert _approve(second.url, approval_id).status_code == 200
        raw = held.result(15)
    assert raw.headers["x-wardgate-approval"] == "approved"
    assert orjson.loads(raw.parse().choices[0].message.tool_calls[0].function.arguments) == ARGS


def test_a_crash_while_held_keeps_the_approval_and_a_defer_resend_picks_it_up(
    replicas: Replicas, upstream
) -> None:
    first, second = replicas.victim, replicas.second
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(_chat, first.base_url)
        approval_id = _pending(second.url)
        first.kill()
        with pytest.raises(openai.APIConnectionError):
            held.result(15)
    assert _approve(second.url, approval_id).status_code == 200
    raw = _chat(second.base_url, extra_headers={"X-Wardgate-Approval-Id": approval_id})
    assert orjson.loads(raw.parse().choices[0].message.tool_calls[0].function.arguments) == ARGS
    assert upstream.request_count == 1
