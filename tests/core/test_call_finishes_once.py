"""Every way a call can end finishes it exactly once: one audit event, one settle.

The call's lifecycle has one owner (``gateway.pipeline.CallScope``); these tests drive a real
gateway (uvicorn on a free port, SQLite audit, in-memory limits) down each path and count
what the finish hooks did against the real stores: audit events with the call's request id,
and settles the limits store received (a spy that passes every call on to the store).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import ADMIN_KEY, TEST_KEY, RunningGateway, gateway_settings, running_gateway
from tests.waiting import wait_until

CHAT = {"model": "gpt-test", "messages": [{"role": "user", "content": "tell me a long story"}]}


class SettleSpy:
    """Counts ``begin_settle`` on the gateway's real limits store (each call is passed on)."""

    def __init__(self, gw: RunningGateway) -> None:
        [stage] = [s for s in gw.ctx.pipeline.stages if s.name == "settle"]
        store = stage._service.store
        real = store.begin_settle
        self.count = 0

        def begin_settle(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return real(*args, **kwargs)

        store.begin_settle = begin_settle


@pytest.fixture
def gateway(fake_upstream: object, tmp_path: Path) -> Iterator[RunningGateway]:
    settings = gateway_settings(
        tmp_path,
        fake_upstream.base_url,  # type: ignore[attr-defined]
        policy={"enabled": False},
        redaction={"enabled": False},
        approvals={"enabled": False},
        providers={"max_attempts": 1, "timeout_s": 5.0},
        server={"shutdown_grace_s": 0},
    )
    with running_gateway(settings) as gw:
        yield gw


def _headers(request_id: str) -> dict[str, str]:
    return {"authorization": f"Bearer {TEST_KEY}", "x-request-id": request_id}


def _settled(gw: RunningGateway, timeout: float = 10.0) -> None:
    """Wait until no call is in flight: its scope (finish, deferred waits) has exited."""
    wait_until(lambda: gw.ctx.drain.in_flight() == 0, within=timeout, message="a call is still in flight")


def _events(gw: RunningGateway, request_id: str) -> list[dict[str, Any]]:
    data = httpx.get(
        gw.url + "/admin/audit",
        params={"kind": "call", "request_id": request_id},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    ).json()["data"]
    return [e for e in data if e["request_id"] == request_id]


def _on_loop(gw: RunningGateway, fn: Callable[[], None]) -> None:
    async def run() -> None:
        fn()

    asyncio.run_coroutine_threadsafe(run(), gw.ctx.drain.loop).result(5)


def _once(gw: RunningGateway, spy: SettleSpy, request_id: str, *, settles: int = 1) -> dict[str, Any]:
    _settled(gw)
    [event] = _events(gw, request_id)
    assert spy.count == settles
    return event


@pytest.mark.parametrize("stream", [False, True])
def test_an_answered_call_is_finished_once(gateway: RunningGateway, upstream: Any, stream: bool) -> None:
    spy = SettleSpy(gateway)
    r = httpx.post(
        gateway.base_url + "/chat/completions",
        json={**CHAT, "stream": stream},
        headers=_headers(f"req-ok-{stream}"),
    )
    assert r.status_code == 200
    event = _once(gateway, spy, f"req-ok-{stream}")
    assert event["status"] == 200 and event["error"] is None and event["cost"]["basis"] == "usage"


@pytest.mark.parametrize("stream", [False, True])
def test_an_upstream_failure_is_finished_once(gateway: RunningGateway, upstream: Any, stream: bool) -> None:
    spy = SettleSpy(gateway)
    upstream.fault("status", times=1, status=500)
    r = httpx.post(
        gateway.base_url + "/chat/completions",
        json={**CHAT, "stream": stream},
        headers=_headers(f"req-502-{stream}"),
    )
    assert r.status_code == 502
    event = _once(gateway, spy, f"req-502-{stream}")
    assert event["error"]["code"] == "upstream_error" and event["cost"]["basis"] == "upstream_error"


def test_a_refused_request_is_finished_once_and_nothing_is_settled(
    gateway: RunningGateway, upstream: Any
) -> None:
    spy = SettleSpy(gateway)
    r = httpx.post(
        gateway.base_url + "/chat/completions",
        content=b'{"model": "gpt-test", "model": "x"}',
        headers=_headers("req-400"),
    )
    assert r.status_code == 400
    event = _once(gateway, spy, "req-400", settles=0)  # refused before anything was reserved
    assert event["error"]["code"] == "invalid_json"


def test_a_stream_whose_client_leaves_is_finished_once(gateway: RunningGateway, upstream: Any) -> None:
    spy = SettleSpy(gateway)
    upstream.fault("slow", times=1, delay_s=0, chunk_delay_s=0.2)
    with httpx.stream(
        "POST",
        gateway.base_url + "/chat/completions",
        json={**CHAT, "stream": True},
        headers=_headers("req-gone"),
        timeout=10,
    ) as resp:
        assert resp.status_code == 200
        next(resp.iter_lines())  # under way; then the client hangs up
    event = _once(gateway, spy, "req-gone")
    assert event["cost"]["basis"] == "reservation"  # the provider may have billed it all


def test_a_stream_cut_by_the_shutdown_drain_is_finished_once(gateway: RunningGateway, upstream: Any) -> None:
    spy = SettleSpy(gateway)
    upstream.fault("hang", times=1, path="/v1/chat/completions", after=2)
    with httpx.stream(
        "POST",
        gateway.base_url + "/chat/completions",
        json={**CHAT, "stream": True},
        headers=_headers("req-cut"),
        timeout=10,
    ) as resp:
        lines = resp.iter_lines()
        next(lines)
        _on_loop(gateway, gateway.ctx.drain.begin)  # grace 0: cut at once
        rest = list(lines)
    assert any("shutting_down" in line for line in rest)
    event = _once(gateway, spy, "req-cut")
    assert event["error"]["code"] == "shutting_down"


def test_a_cancelled_call_is_still_finished_once(gateway: RunningGateway, upstream: Any) -> None:
    """A cancellation that is neither the drain's cut nor the client leaving (the server
    stopping without waiting): the call is still settled and audited, once."""
    spy = SettleSpy(gateway)
    upstream.fault("hang", times=1)
    outcome: list[object] = []

    def send() -> None:
        try:
            r = httpx.post(
                gateway.base_url + "/chat/completions", json=CHAT, headers=_headers("req-cancel"), timeout=10
            )
            outcome.append(r.status_code)  # the server's own 500: the app ended without answering
        except httpx.HTTPError as exc:  # or the connection is dropped
            outcome.append(exc)

    client = threading.Thread(target=send)
    client.start()
    wait_until(lambda: gateway.ctx.drain.in_flight() > 0 and upstream.request_count > 0, within=5)

    def cancel() -> None:
        for owner in list(gateway.ctx.drain._calls):  # the one call in flight
            owner.task.cancel()

    _on_loop(gateway, cancel)
    client.join(10)
    event = _once(gateway, spy, "req-cancel")
    assert event["error"]["code"] == "shutting_down" and event["cost"]["basis"] == "reservation"
    assert outcome and outcome[0] != 200
