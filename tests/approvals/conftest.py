"""Fixtures for the approval queue: services on either backend, calls, reviewers."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from cryptography.fernet import Fernet
from prometheus_client import CollectorRegistry

from gateway.approvals.config import ApprovalSettings
from gateway.approvals.crypto import AnswerSealer
from gateway.approvals.fingerprint import fingerprint
from gateway.approvals.memory import MemoryApprovalStore
from gateway.approvals.metrics import ApprovalMetrics
from gateway.approvals.model import Approval, Clock
from gateway.approvals.redis_store import RedisApprovalStore
from gateway.approvals.service import ApprovalService
from gateway.approvals.spec import ApprovalSpec
from gateway.approvals.store import ApprovalStore
from gateway.approvals.webhooks import WebhookSender
from gateway.call import Call, Endpoint, Principal
from gateway.keys.store import AdminPrincipal

KEY = Fernet.generate_key()

AGENT = Principal(key_id="agent-key", team="payments", user="alice")
OTHER_AGENT = Principal(key_id="other-key", team="payments", user="bob")
FINANCE = AdminPrincipal("fin-1", "carol", frozenset({"approver"}), frozenset({"finance"}))
FINANCE_2 = AdminPrincipal("fin-2", "dave", frozenset({"approver"}), frozenset({"finance"}))
SUPPORT = AdminPrincipal("sup-1", "erin", frozenset({"approver"}), frozenset({"support"}))
#: An admin key held by the same person who owns the agent key: four-eyes must refuse it.
ALICE_ADMIN = AdminPrincipal("alice-admin", "alice", frozenset({"admin"}), frozenset({"*"}))


class RecordingAudit:
    """Stands in for the audit log (an ``AuditRecorder``): keeps what it was asked to record."""

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    async def record(self, kind: str, payload: dict[str, Any]) -> None:
        self.events.append((kind, payload))

    def kinds(self, approval_id: str) -> list[str]:
        """The ``event`` of each record for this approval (the audit kind is always "approval")."""
        assert all(k == "approval" for k, _ in self.events)
        return [p["event"] for k, p in self.events if p["id"] == approval_id]


def chat_call(
    body: dict[str, Any] | None = None,
    *,
    stream: bool = False,
    principal: Principal = AGENT,
    headers: dict[str, str] | None = None,
    endpoint: Endpoint = Endpoint.CHAT,
) -> Call:
    if body is None:
        body = {
            "model": "gpt-test",
            "messages": [{"role": "user", "content": "pay the invoice"}],
            "tools": [{"type": "function", "function": {"name": "transfer_funds", "parameters": {}}}],
        }
        if endpoint is Endpoint.RESPONSES:
            body = {
                "model": "gpt-test",
                "input": "pay the invoice",
                "tools": [{"type": "function", "name": "transfer_funds", "parameters": {}}],
            }
    body = {**body, "stream": stream}
    return Call(
        request_id="req_test",
        endpoint=endpoint,
        body=body,
        headers=dict(headers or {}),
        stream=stream,
        model=body["model"],
        principal=principal,
        agent_id="agent-7",
        run_id="run-42",
    )


@pytest.fixture
async def make_service(redis_url: str, key_prefix: str) -> AsyncIterator[Callable[..., Any]]:
    """Build started services (several on one Redis prefix act as replicas); all closed after the test."""
    made: list[ApprovalService] = []

    async def factory(
        backend: str = "memory",
        *,
        store: ApprovalStore | None = None,
        sweep: bool = False,
        audit: Any = None,
        clock: Clock | None = None,
        **overrides: Any,
    ) -> ApprovalService:
        """``clock`` (a ``tests.waiting.FakeClock``): TTLs, expiry and lock leases run on it."""
        settings = ApprovalSettings(backend=backend, redis_url=redis_url, key_prefix=key_prefix, **overrides)
        if store is None:
            store = (
                RedisApprovalStore.from_url(
                    redis_url, key_prefix, settings.retention_s, clock=clock or time.time
                )
                if backend == "redis"
                else MemoryApprovalStore(clock=clock or time.monotonic)
            )
        metrics = ApprovalMetrics(CollectorRegistry())
        hooks = {g: s.webhook for g, s in settings.groups.items() if s.webhook}
        service = ApprovalService(
            settings,
            store,
            AnswerSealer([KEY]),
            metrics,
            WebhookSender(hooks, metrics),
            lambda: audit,
            clock=clock or time.time,
        )
        await service.start(sweep=sweep)
        made.append(service)
        return service

    yield factory
    for service in made:
        await service.close()
    cleanup = RedisApprovalStore.from_url(redis_url, key_prefix, 60)
    await cleanup.delete_all()
    await cleanup.close()


TRANSFER = {"id": "call_1", "name": "transfer_funds", "arguments": {"amount": 5000, "to": "ACME"}}


async def new_approval(
    service: ApprovalService,
    *,
    groups: tuple[str, ...] = ("finance",),
    required: int = 1,
    ttl_s: float = 60.0,
    hold_s: float = 5.0,
    mode: str = "hold",
    call: Call | None = None,
    answer: dict[str, Any] | None = None,
    phase: str = "response",
) -> Approval:
    spec = ApprovalSpec(
        mode=mode,
        ttl_s=ttl_s,
        hold_s=hold_s,
        approvals_required=required,
        groups=list(groups),
        reasons=["transfers above 1000 need a finance approver"],
        tool_calls=[dict(TRANSFER)],
    )
    call = call or chat_call()
    return await service.create(call, phase, spec, fingerprint(call), answer)
