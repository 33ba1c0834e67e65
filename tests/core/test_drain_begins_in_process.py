"""The drain of one app, started by hand on a gateway served from a thread (no signals there):
readiness, and a call that arrives once the grace is over. The SIGTERM path itself, with real
processes, is ``test_shutdown_drain.py``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from tests.harness import ADMIN_KEY, TEST_KEY, RunningGateway, gateway_settings, running_gateway
from tests.waiting import wait_until


@pytest.fixture
def gateway(fake_upstream: object, tmp_path: Path) -> Iterator[RunningGateway]:
    settings = gateway_settings(
        tmp_path,
        fake_upstream.base_url,  # type: ignore[attr-defined]
        policy={"enabled": False},
        redaction={"enabled": False},
        approvals={"enabled": False},
        server={"shutdown_grace_s": 0},
    )
    with running_gateway(settings) as gw:
        yield gw


def _on_loop(gw: RunningGateway, fn: object) -> None:
    async def run() -> None:
        fn()  # type: ignore[operator]

    loop = gw.ctx.drain.loop
    asyncio.run_coroutine_threadsafe(run(), loop).result(5)


def test_readiness_is_503_draining_once_the_drain_begins_and_liveness_stays_200(gateway):
    assert httpx.get(gateway.url + "/readyz").status_code == 200
    _on_loop(gateway, gateway.ctx.drain.begin)
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 503 and ready.json() == {"status": "draining", "checks": {}}
    assert httpx.get(gateway.url + "/healthz").status_code == 200


def test_a_call_arriving_after_the_grace_gets_503_shutting_down_and_is_audited(gateway, upstream):
    _on_loop(gateway, gateway.ctx.drain.begin)  # grace 0: the cut follows at once
    client = openai.OpenAI(base_url=gateway.base_url, api_key=TEST_KEY, max_retries=0)
    with pytest.raises(openai.InternalServerError) as info:
        client.chat.completions.create(
            model="gpt-test",
            messages=[{"role": "user", "content": "late"}],
            extra_headers={"x-request-id": "req-late-call"},
        )
    assert info.value.status_code == 503 and info.value.code == "shutting_down"
    assert info.value.response.headers["x-should-retry"] == "true"
    assert upstream.request_count == 0  # refused before any work, the provider never called
    events = httpx.get(
        gateway.url + "/admin/audit",
        params={"kind": "call"},
        headers={"authorization": f"Bearer {ADMIN_KEY}"},
    ).json()["data"]
    [event] = [e for e in events if e["request_id"] == "req-late-call"]
    assert event["error"]["code"] == "shutting_down" and event["status"] == 503
    assert (
        event["cost"]["reserved_usd"] is None and event["cost"]["settled_usd"] is None
    )  # nothing held or booked


def _sse_events(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
    """(event name, data) per SSE event."""
    name: str | None = None
    for line in lines:
        if line.startswith("event:"):
            name = line[6:].strip()
        elif line.startswith("data:"):
            yield name, line[5:].strip()
            name = None


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/chat/completions", {"messages": [{"role": "user", "content": "a long answer please"}]}),
        ("/responses", {"input": "a long answer please"}),
    ],
)
def test_a_stream_under_way_when_the_grace_ends_gets_the_endpoints_error_event(gateway, upstream, path, body):
    upstream.fault("hang", times=1, path="/v1" + path, after=2)
    headers = {"authorization": f"Bearer {TEST_KEY}", "x-request-id": "req-cut-stream"}
    with httpx.stream(
        "POST",
        gateway.base_url + path,
        json={"model": "gpt-test", "stream": True, **body},
        headers=headers,
        timeout=10,
    ) as resp:
        assert resp.status_code == 200
        events = _sse_events(resp.iter_lines())
        next(events)  # under way
        _on_loop(gateway, gateway.ctx.drain.begin)
        rest = list(events)
    name, data = rest[-1]
    error = orjson.loads(data)
    if path == "/responses":  # the Responses API's own error event
        assert name == "error" and error["type"] == "error" and error["code"] == "shutting_down"
    else:
        assert error["error"]["code"] == "shutting_down" and error["error"]["type"] == "service_unavailable"
    assert all("[DONE]" not in d for _, d in rest)  # an error, not a clean end
    # The gateway closed its upstream request; the fake notices a moment later.
    wait_until(lambda: upstream.requests[-1].disconnected, message="the upstream request stayed open")
