"""SIGTERM to a real ``wardgate serve`` process: what it finishes, what it cuts, and how.

Every gateway here shares one Redis prefix (limits, approvals) and one PostgreSQL audit schema
with a second, long-lived "witness" gateway, which the tests read through (spend, audit,
approvals) after the drained process is gone: nothing the drain did may exist only in the
process that exited. The grace is short (``shutdown_grace_s: 1.5``) so the cuts are quick;
each test drains its own gateway, all of them booted in parallel by the module's fixture.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import openai
import orjson
import pytest
import redis.asyncio as aredis
import yaml
from cryptography.fernet import Fernet

from gateway.limits.redis_store import RedisStore
from tests.approvals.test_approvals_e2e import ARGS, MESSAGES, TOOLS
from tests.harness import ADMIN_KEY, APPROVER_KEY, TEST_KEY, GatewayProcess, gateway_settings, stop_all
from tests.waiting import wait_until

GRACE_S = 1.5
PG_DSN = "postgresql://root@127.0.0.1:5432/test"
ADMIN = {"authorization": f"Bearer {ADMIN_KEY}"}
LONG = [{"role": "user", "content": "Tell me a long story about the harbour."}]


#: The gateways of this module, by test: all boot at once (booting is most of these tests' time).
_SERVER = {
    "witness": {},
    "cut": {},
    "hold": {},
    "single": {"shutdown_grace_s": 5.0},
    "workers": {"workers": 2, "shutdown_grace_s": 5.0},
    "delay": {"shutdown_delay_s": 1.0},
    "interrupt": {"shutdown_grace_s": 60.0},
    "terminal": {"workers": 2, "shutdown_grace_s": 60.0},
}


@pytest.fixture(scope="module")
def shared(
    redis_url: str, postgres_dsn: str, tmp_path_factory: pytest.TempPathFactory, fake_upstream: Any
) -> Iterator[dict[str, Any]]:
    """What the gateways of this module share, and the gateways (started in parallel)."""
    prefix = f"wgtest:{uuid.uuid4().hex[:12]}"
    schema = f"wgtest_drain_{uuid.uuid4().hex[:12]}"
    env = {"WARDGATE_APPROVALS_KEY": Fernet.generate_key().decode()}
    state: dict[str, Any] = {
        "prefix": prefix,
        "schema": schema,
        "redis_url": redis_url,
        "root": tmp_path_factory.mktemp("drain"),
    }
    # "terminal" runs in a process group of its own, as a terminal would start it (so a test
    # can send the group a Ctrl+C without hitting pytest).
    procs = {
        name: GatewayProcess(
            _config(state, fake_upstream.base_url, **server),
            state["root"],
            env=env,
            new_session=name == "terminal",
        )
        for name, server in _SERVER.items()
    }
    try:
        for proc in procs.values():
            proc.spawn()
        for proc in procs.values():
            proc.wait_ready(90)
        yield {**state, **procs}
    finally:
        stop_all(procs.values())
        asyncio.run(_cleanup(redis_url, prefix, schema))


async def _cleanup(redis_url: str, prefix: str, schema: str) -> None:
    store = RedisStore(redis_url, prefix=prefix)
    await store.delete_prefix()
    await store.close()
    client = aredis.Redis.from_url(redis_url)
    keys = [k async for k in client.scan_iter(match="{" + prefix + ":apr}:*", count=500)]
    if keys:
        await client.delete(*keys)
    await client.aclose()
    conn = await asyncpg.connect(PG_DSN)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def _config(state: dict[str, Any], upstream_url: str, **server: Any) -> dict[str, Any]:
    root: Path = state["root"] / uuid.uuid4().hex[:8]
    redis = {"redis_url": state["redis_url"], "key_prefix": state["prefix"]}
    settings = gateway_settings(
        root,
        upstream_url,
        limits={"backend": "redis", **redis},
        approvals={"backend": "redis", "hold_s": 30, **redis},
        audit={"backend": "postgres", "postgres_dsn": PG_DSN, "postgres_schema": state["schema"]},
        redaction={"enabled": False},
        server={"shutdown_grace_s": GRACE_S, **server},
        # Only the drain may end a hanging upstream here: the tests' usual 5 s upstream timeout
        # fired first on a busy machine (the stream ended in upstream_error, not shutting_down).
        providers={"timeout_s": 120.0},
    )
    (settings.policies_dir / "limits.yaml").write_text(
        yaml.safe_dump({"scopes": {"key": {"budget_usd": {"total": 100.0}}}, "run_guards": {}})
    )
    return settings.model_dump(mode="json")


def _sigterm(proc: GatewayProcess) -> float:
    assert proc.proc is not None
    proc.proc.send_signal(signal.SIGTERM)
    return time.monotonic()


def _exited(proc: GatewayProcess, timeout: float = 15.0) -> int:
    assert proc.proc is not None
    return proc.proc.wait(timeout=timeout)


def _refuses_connections(port: int, within_s: float = 3.0) -> bool:
    def refused() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return False
        except ConnectionRefusedError:
            return True
        except OSError:
            return False

    try:
        return wait_until(refused, within=within_s, interval=0.02)
    except TimeoutError:
        return False


def _witness(shared: dict[str, Any]) -> GatewayProcess:
    return shared["witness"]


def _audit_events(shared: dict[str, Any], request_id: str) -> list[dict[str, Any]]:
    resp = httpx.get(
        _witness(shared).url + "/admin/audit", params={"kind": "call", "key": "test"}, headers=ADMIN
    )
    assert resp.status_code == 200, resp.text
    return [e for e in resp.json()["data"] if e.get("request_id") == request_id]


def _spend(shared: dict[str, Any]) -> dict[str, Any]:
    resp = httpx.get(
        _witness(shared).url + "/admin/spend", params={"scope": "key", "id": "test"}, headers=ADMIN
    )
    assert resp.status_code == 200, resp.text
    return resp.json()


def _client(proc: GatewayProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=proc.base_url, api_key=TEST_KEY, max_retries=0, timeout=30)


def test_past_the_grace_a_stream_gets_an_sse_error_and_a_call_a_503_both_booked_and_audited(shared, upstream):
    proc: GatewayProcess = shared["cut"]
    before = _spend(shared)
    stream_id, call_id = (f"req-drain-{kind}-{uuid.uuid4().hex[:8]}" for kind in ("stream", "call"))
    upstream.fault("hang", times=1, path="/v1/chat/completions", after=2)  # two events, then silence
    stream = _client(proc).chat.completions.create(
        model="gpt-test", messages=LONG, stream=True, max_tokens=50, extra_headers={"x-request-id": stream_id}
    )
    chunks = iter(stream)
    assert next(chunks).choices is not None  # the stream is under way
    upstream.fault("slow", times=1, path="/v1/chat/completions", delay_s=30)
    with ThreadPoolExecutor(1) as pool:
        slow = pool.submit(
            lambda: _client(proc).chat.completions.with_raw_response.create(
                model="gpt-test", messages=LONG, max_tokens=50, extra_headers={"x-request-id": call_id}
            )
        )
        upstream.wait_for_requests(2)
        signalled = _sigterm(proc)
        with pytest.raises(openai.APIError) as streamed:
            for _ in chunks:
                pass
        cut_after = time.monotonic() - signalled
        with pytest.raises(openai.InternalServerError) as answered:
            slow.result(10)
    # Neither upstream request is left open until the process exits: the cut closes them.
    assert _eventually(lambda: all(r.disconnected for r in upstream.requests)), upstream.requests
    _exited(proc)
    # The stream: an OpenAI-shaped error event once the grace is over.
    assert streamed.value.code == "shutting_down"
    assert streamed.value.body["type"] == "service_unavailable" and streamed.value.body["param"] is None
    assert GRACE_S - 0.2 <= cut_after < GRACE_S + 5.0  # not before the grace is over
    # The non-stream call: a 503 the SDK (and a load balancer) may retry elsewhere.
    assert answered.value.status_code == 503 and answered.value.code == "shutting_down"
    assert answered.value.response.headers["x-should-retry"] == "true"
    assert answered.value.response.headers["retry-after"] == "1"
    # Both audited, both booked at their reservation (they reached the provider), nothing held.
    booked = 0.0
    for request_id, stream_flag in ((stream_id, True), (call_id, False)):
        events = _audit_events(shared, request_id)
        assert len(events) == 1, events
        event = events[0]
        assert event["error"]["code"] == "shutting_down" and event["stream"] is stream_flag
        assert event["client_disconnected"] is False
        reserved = event["cost"]["reserved_usd"]
        assert reserved > 0 and event["cost"]["settled_usd"] == pytest.approx(reserved)
        assert event["cost"]["basis"] == "reservation"
        booked += reserved
    after = _spend(shared)
    assert _spent(after) - _spent(before) == pytest.approx(booked)
    assert after["reserved_usd"] == 0


def _eventually(check: Any, within_s: float = 2.0) -> bool:
    deadline = time.monotonic() + within_s
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _spent(spend: dict[str, Any]) -> float:
    return spend["windows"]["total"]["spent_usd"]


def test_sigterm_answers_a_held_approval_409_pending_and_another_process_serves_the_resend(shared, upstream):
    proc: GatewayProcess = shared["hold"]
    witness = _witness(shared)
    upstream.script_tool_call("transfer_funds", ARGS, times=1)
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(
            lambda: _client(proc).chat.completions.with_raw_response.create(
                model="gpt-test", messages=MESSAGES, tools=TOOLS
            )
        )
        approval_id = _pending_approval(witness)
        _sigterm(proc)
        with pytest.raises(openai.ConflictError) as info:  # handed back at once (a hold is never cut)
            held.result(10)
    _exited(proc)
    assert info.value.code == "approval_pending"
    assert info.value.body["approval_id"] == approval_id
    assert info.value.response.headers["x-wardgate-approval-id"] == approval_id
    assert info.value.response.headers["x-should-retry"] == "false"
    reviewer = {"authorization": f"Bearer {APPROVER_KEY}"}
    record = httpx.get(f"{witness.url}/admin/approvals/{approval_id}", headers=reviewer)
    assert record.json()["status"] == "pending"  # the drain decided nothing
    approved = httpx.post(
        f"{witness.url}/admin/approvals/{approval_id}/approve", json={"comment": "ok"}, headers=reviewer
    )
    assert approved.status_code == 200, approved.text
    raw = _client(witness).chat.completions.with_raw_response.create(
        model="gpt-test",
        messages=MESSAGES,
        tools=TOOLS,
        extra_headers={"X-Wardgate-Approval-Id": approval_id},
    )
    assert raw.headers["x-wardgate-approval"] == "approved"
    assert orjson.loads(raw.parse().choices[0].message.tool_calls[0].function.arguments) == ARGS
    with pytest.raises(openai.ConflictError) as again:  # exactly once: the answer was released
        _client(witness).chat.completions.create(
            model="gpt-test",
            messages=MESSAGES,
            tools=TOOLS,
            extra_headers={"X-Wardgate-Approval-Id": approval_id},
        )
    assert again.value.code == "approval_used"
    assert upstream.request_count == 1  # the model was called once, by the drained process


def _pending_approval(witness: GatewayProcess) -> str:
    def pending() -> list[dict[str, Any]]:
        return httpx.get(  # type: ignore[no-any-return]  # JSON
            witness.url + "/admin/approvals?status=pending",
            headers={"authorization": f"Bearer {APPROVER_KEY}"},
        ).json()["data"]

    return str(wait_until(pending, within=10, interval=0.05, message="no approval became pending")[0]["id"])


@pytest.mark.parametrize("name", ["single", "workers"])
def test_sigterm_refuses_new_connections_at_once_and_lets_a_short_call_finish(shared, upstream, name):
    """The refusal must come while the call is still in flight: with several workers, uvicorn's
    supervisor kept its copy of the listening socket until the workers exited, so new clients
    were accepted by the kernel and hung for the whole drain."""
    proc: GatewayProcess = shared[name]
    upstream.fault("slow", times=1, path="/v1/chat/completions", delay_s=2.0)
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(
            lambda: _client(proc).chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "short"}]
            )
        )
        upstream.wait_for_requests(1)
        _sigterm(proc)
        assert _refuses_connections(proc.port, within_s=1.5), "the listener is still accepting after SIGTERM"
        assert not in_flight.done()
        answer = in_flight.result(10)
    assert answer.choices[0].message.content == "Echo: short"
    _exited(proc)


def test_readiness_goes_503_first_while_the_delay_keeps_serving(shared, upstream):
    proc: GatewayProcess = shared["delay"]
    assert httpx.get(proc.url + "/readyz").status_code == 200
    _sigterm(proc)
    deadline = time.monotonic() + 2
    ready = httpx.get(proc.url + "/readyz")
    while ready.status_code == 200 and time.monotonic() < deadline:
        ready = httpx.get(proc.url + "/readyz")
    assert ready.status_code == 503 and ready.json()["status"] == "draining"
    served = _client(proc).chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "hi"}]
    )
    assert served.choices[0].message.content == "Echo: hi"  # still served during the delay
    assert _refuses_connections(proc.port, within_s=3.0)
    _exited(proc)


def test_a_second_ctrl_c_cuts_at_once_and_the_cut_call_is_still_audited(shared, upstream):
    proc: GatewayProcess = shared["interrupt"]
    assert proc.proc is not None
    request_id = f"req-drain-interrupt-{uuid.uuid4().hex[:8]}"
    upstream.fault("hang", times=1, path="/v1/chat/completions", after=2)
    chunks = iter(
        _client(proc).chat.completions.create(
            model="gpt-test",
            messages=LONG,
            stream=True,
            max_tokens=50,
            extra_headers={"x-request-id": request_id},
        )
    )
    next(chunks)
    proc.proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    assert proc.proc.poll() is None  # one Ctrl+C drains (the grace here is 60 s)
    interrupted = time.monotonic()
    proc.proc.send_signal(signal.SIGINT)
    with pytest.raises(openai.APIError) as info:
        for _ in chunks:
            pass
    assert info.value.code == "shutting_down"
    _exited(proc)
    assert time.monotonic() - interrupted < 10
    [event] = _audit_events(shared, request_id)
    assert event["error"]["code"] == "shutting_down" and event["cost"]["basis"] == "reservation"


def test_one_ctrl_c_to_a_multi_worker_gateway_drains_gracefully(shared, upstream):
    """A terminal's Ctrl+C reaches every process of the group: each worker gets SIGINT from the
    terminal and SIGTERM from the supervisor. That is one request to stop, not two: the stream
    in flight must finish, not be cut as a second Ctrl+C would."""
    proc: GatewayProcess = shared["terminal"]
    assert proc.proc is not None
    words = " ".join(f"w{i}" for i in range(12))
    upstream.fault("slow", times=1, path="/v1/chat/completions", chunk_delay_s=0.15)
    chunks = iter(
        _client(proc).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": words}], stream=True
        )
    )
    text = next(chunks).choices[0].delta.content or ""
    os.killpg(proc.proc.pid, signal.SIGINT)
    text += "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == f"Echo: {words}"
    assert _refuses_connections(proc.port, within_s=2.0)
    _exited(proc)
