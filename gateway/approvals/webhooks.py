"""Webhooks to approver groups: a signed POST on every new approval, delivered off the hot path.

Delivery never blocks the queue or the request that created the approval: ``enqueue`` only
puts the payload on a bounded in-process queue (full: the delivery is dropped and counted),
worker tasks POST it, and failures are retried with exponential backoff by re-queueing
later. 2xx is success; other 4xx (except 408/429) are final, since retrying cannot help.

Signature (receivers verify with ``verify_signature``)::

    X-Wardgate-Timestamp: <unix seconds>
    X-Wardgate-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>." + body)>

Signing the timestamp with the body lets a receiver reject replays of old deliveries.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import os
import time
import uuid
from dataclasses import dataclass

import aiohttp

from gateway.approvals.config import WebhookSettings
from gateway.approvals.metrics import ApprovalMetrics
from gateway.approvals.tasks import stop

log = logging.getLogger("wardgate.approvals.webhooks")

_WORKERS = 4


def sign(secret: bytes, timestamp: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_signature(
    secret: bytes, timestamp: str, body: bytes, signature: str, tolerance_s: float = 300.0
) -> bool:
    try:
        fresh = abs(time.time() - int(timestamp)) <= tolerance_s
    except ValueError:
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), signature)


@dataclass(slots=True)
class Delivery:
    group: str
    hook: WebhookSettings
    event: str
    body: bytes
    delivery_id: str
    attempt: int = 0


class WebhookSender:
    def __init__(
        self, hooks: dict[str, WebhookSettings], metrics: ApprovalMetrics, queue_size: int = 10_000
    ) -> None:
        self._hooks = hooks
        self._metrics = metrics
        self._queue: asyncio.Queue[Delivery] = asyncio.Queue(maxsize=queue_size)
        self._workers: list[asyncio.Task[None]] = []
        self._retries: set[asyncio.TimerHandle] = set()
        self._session: aiohttp.ClientSession | None = None
        for group, hook in hooks.items():
            if hook.secret_env and not os.environ.get(hook.secret_env):
                log.warning(
                    "webhook for group %s: env %s is unset; deliveries go out unsigned",
                    group,
                    hook.secret_env,
                )

    @property
    def enabled(self) -> bool:
        return bool(self._hooks)

    async def start(self) -> None:
        if not self._hooks or self._workers:
            return
        self._session = aiohttp.ClientSession()
        self._workers = [
            asyncio.create_task(self._work(), name=f"approvals-webhook-{i}") for i in range(_WORKERS)
        ]

    async def close(self) -> None:
        for handle in self._retries:
            handle.cancel()
        self._retries.clear()
        for task in self._workers:
            await stop(task)
        self._workers = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    def enqueue(self, groups: list[str], event: str, body: bytes) -> None:
        """Queue one delivery per group that has a webhook; never waits."""
        for group in groups:
            hook = self._hooks.get(group)
            if hook is None:
                continue
            self._put(Delivery(group, hook, event, body, "dlv_" + uuid.uuid4().hex))

    def _put(self, delivery: Delivery) -> None:
        try:
            self._queue.put_nowait(delivery)
        except asyncio.QueueFull:
            log.error("webhook queue full: dropping %s to group %s", delivery.event, delivery.group)
            self._metrics.webhooks.labels(delivery.group, "dropped").inc()

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await self._attempt(delivery)
            except Exception:  # a worker must survive any one delivery's failure
                log.exception("webhook worker failed on a delivery")
            finally:
                self._queue.task_done()

    async def _attempt(self, d: Delivery) -> None:
        d.attempt += 1
        timestamp = str(int(time.time()))
        headers = {
            "content-type": "application/json",
            "user-agent": "wardgate-approvals",
            "x-wardgate-event": d.event,
            "x-wardgate-delivery": d.delivery_id,
            "x-wardgate-timestamp": timestamp,
            "x-wardgate-attempt": str(d.attempt),
        }
        secret = os.environ.get(d.hook.secret_env) if d.hook.secret_env else None
        if secret:
            headers["x-wardgate-signature"] = sign(secret.encode(), timestamp, d.body)
        final = False
        if self._session is None:
            raise RuntimeError("webhook workers run only between start() and close()")
        try:
            timeout = aiohttp.ClientTimeout(total=d.hook.timeout_s)
            async with self._session.post(d.hook.url, data=d.body, headers=headers, timeout=timeout) as resp:
                if 200 <= resp.status < 300:
                    self._metrics.webhooks.labels(d.group, "delivered").inc()
                    return
                final = 400 <= resp.status < 500 and resp.status not in (408, 429)
                problem = f"HTTP {resp.status}"
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        if final or d.attempt >= d.hook.max_attempts:
            log.error(
                "webhook to group %s failed for good after %d attempt(s): %s", d.group, d.attempt, problem
            )
            self._metrics.webhooks.labels(d.group, "failed").inc()
            return
        delay = min(d.hook.backoff_s * (2 ** (d.attempt - 1)), d.hook.backoff_max_s)
        log.warning(
            "webhook to group %s failed (%s); retry %d in %.1fs", d.group, problem, d.attempt + 1, delay
        )
        self._metrics.webhooks.labels(d.group, "retried").inc()
        handle: asyncio.TimerHandle

        def requeue() -> None:
            self._retries.discard(handle)
            self._put(d)

        handle = asyncio.get_running_loop().call_later(delay, requeue)
        self._retries.add(handle)
