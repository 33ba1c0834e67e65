"""Webhooks: delivered to a real local HTTP server, signed, retried, never blocking the queue."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from gateway.approvals.webhooks import sign, verify_signature
from tests.approvals.conftest import FINANCE, new_approval
from tests.waiting import wait_until_async

SECRET = "whsec-test-finance"


class Receiver:
    """A local aiohttp server that answers with scripted statuses and records what it got."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.received: list[tuple[dict[str, str], bytes, float]] = []
        self.got = asyncio.Event()
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.received.append(({k.lower(): v for k, v in request.headers.items()}, body, time.monotonic()))
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 200:
            self.got.set()
        return web.Response(status=status)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    rec.url = f"http://127.0.0.1:{port}/hook"
    yield rec
    await runner.cleanup()


def _groups(url: str, **hook: Any) -> dict[str, Any]:
    return {
        "finance": {
            "webhook": {"url": url, "secret_env": "WG_TEST_FINANCE_SECRET", "backoff_s": 0.05, **hook}
        }
    }


async def test_webhook_is_delivered_and_signed_on_creation(
    make_service, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WG_TEST_FINANCE_SECRET", SECRET)
    service = await make_service("memory", groups=_groups(receiver.url), public_url="https://gw.example")
    approval = await new_approval(service, groups=("finance",))
    await asyncio.wait_for(receiver.got.wait(), 5)
    headers, body, _ = receiver.received[0]
    assert headers["x-wardgate-event"] == "approval.created"
    assert verify_signature(
        SECRET.encode(), headers["x-wardgate-timestamp"], body, headers["x-wardgate-signature"]
    )
    assert not verify_signature(
        b"wrong", headers["x-wardgate-timestamp"], body, headers["x-wardgate-signature"]
    )
    assert not verify_signature(
        SECRET.encode(), headers["x-wardgate-timestamp"], body + b" ", headers["x-wardgate-signature"]
    )
    payload = orjson.loads(body)
    assert payload["approval"]["id"] == approval.id
    assert payload["approval"]["tool_calls"][0]["name"] == "transfer_funds"
    assert payload["url"] == f"https://gw.example/admin/approvals/{approval.id}"
    assert service.metrics.webhooks.labels("finance", "delivered")._value.get() == 1


async def test_webhook_is_retried_with_backoff_after_failures(
    make_service, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WG_TEST_FINANCE_SECRET", SECRET)
    receiver.statuses = [500, 503]
    service = await make_service("memory", groups=_groups(receiver.url))
    await new_approval(service, groups=("finance",))
    await asyncio.wait_for(receiver.got.wait(), 5)
    assert len(receiver.received) == 3
    times = [t for _, _, t in receiver.received]
    assert times[1] - times[0] >= 0.04 and times[2] - times[1] >= 0.09  # 0.05 s, then doubled
    ids = {h["x-wardgate-delivery"] for h, _, _ in receiver.received}
    assert len(ids) == 1  # one delivery, several attempts
    assert [h["x-wardgate-attempt"] for h, _, _ in receiver.received] == ["1", "2", "3"]
    assert service.metrics.webhooks.labels("finance", "retried")._value.get() == 2


async def test_a_dead_webhook_never_blocks_or_fails_the_queue(
    make_service, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WG_TEST_FINANCE_SECRET", SECRET)
    # Nothing listens on port 9 (discard): every attempt fails at once.
    service = await make_service(
        "memory", groups=_groups("http://127.0.0.1:9/hook", max_attempts=2, timeout_s=0.5)
    )
    t0 = time.perf_counter()
    approval = await new_approval(service, groups=("finance",))
    assert time.perf_counter() - t0 < 0.2
    assert (await service.approve(approval.id, FINANCE, None)).status.value == "approved"
    await wait_until_async(
        lambda: service.metrics.webhooks.labels("finance", "failed")._value.get() >= 1,
        message="the failed delivery was never given up",
    )


async def test_a_client_error_is_not_retried(
    make_service, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WG_TEST_FINANCE_SECRET", SECRET)
    receiver.statuses = [410]
    service = await make_service("memory", groups=_groups(receiver.url))
    await new_approval(service, groups=("finance",))
    await wait_until_async(lambda: service.metrics.webhooks.labels("finance", "failed")._value.get() >= 1)
    await asyncio.sleep(0.2)
    assert len(receiver.received) == 1


def test_signature_covers_the_timestamp_and_old_deliveries_are_rejected() -> None:
    body = b'{"x":1}'
    now = str(int(time.time()))
    assert verify_signature(b"s", now, body, sign(b"s", now, body))
    old = str(int(time.time()) - 3600)
    assert not verify_signature(b"s", old, body, sign(b"s", old, body))
    assert not verify_signature(b"s", now, body, sign(b"s", old, body))
