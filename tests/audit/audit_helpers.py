"""Builders shared by the audit tests: calls in every shape the gateway produces."""

from __future__ import annotations

import asyncio
import os
import re
import sqlite3
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import asyncpg
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response

from gateway.audit.component import Audit
from gateway.call import Call, Decision, Endpoint, ModelResponse, Principal, Usage
from gateway.callstate import ApprovalAsk, ApprovalOutcome, LimitsView, StreamAnswer
from gateway.context import AppContext
from gateway.errors import Denied, GatewayError, UpstreamError
from gateway.keys.store import AdminPrincipal, KeyStore, hash_key
from gateway.limits.component import Limits
from gateway.models import ModelCatalog
from gateway.observability.component import Observability
from gateway.pipeline import Pipeline, Stage
from gateway.settings import Settings

PG_DSN = os.environ.get("WARDGATE_TEST_PG_DSN", "postgresql://root@127.0.0.1:5432/test")
SECRET_KEY = "wg-" + "S3cr3tAgentKeyValue0123456789abcdef"
PROVIDER_KEY = "sk-proj-" + "ProviderSecretKey0123456789ABCDEFGH"
EMAIL = "jane.doe.audit@example.org"
CARD = "4111 1111 1111 1111"
PROMPT = f"Please email {EMAIL} my card {CARD} and use key {PROVIDER_KEY}"


def make_call(
    *,
    team: str = "team-a",
    key_id: str = "key-a",
    agent: str | None = "agent-1",
    run: str | None = "run-1",
    model: str = "gpt-4o-mini",
    outcome: str = "allow",
    stream: bool = False,
    cost: float | None = 0.00125,
    tokens: tuple[int, int] = (120, 30),
    started: float | None = None,
    **state: Any,
) -> Call:
    """A finished call; ``outcome`` is allow | deny | failed | pending."""
    call = Call(
        request_id=f"req_{uuid.uuid4().hex}",
        endpoint=Endpoint.CHAT,
        body={"model": model, "messages": [{"role": "user", "content": PROMPT}], "max_tokens": 64},
        headers={"authorization": f"Bearer {SECRET_KEY}", "x-run-id": run or ""},
        stream=stream,
        model=model,
        principal=Principal(key_id=key_id, team=team, user="alice"),
        agent_id=agent,
        run_id=run,
        parent_run_id="run-0" if run else None,
    )
    call.started_wall = started if started is not None else time.time() - 0.3
    call.timings = {"authenticate": 0.00002, "limit": 0.0001, "redact_in": 0.0003, "policy_request": 0.0002}
    call.decisions.append(Decision("policy_request", "request", "allow", [], "rev-7", {"rule": "default"}))
    if outcome == "deny":
        call.decisions[-1] = Decision(
            "policy_request",
            "request",
            "deny",
            ["model not allowed for team"],
            "rev-7",
            {"rule": "model_allowlist", "input": PROMPT},
        )
        call.error = Denied(["model not allowed for team"])
        call.cost_usd = 0.0
    elif outcome == "failed":
        call.timings["forward"] = 0.5
        call.deployment = "openai-east"
        call.retries = 2
        call.upstream_status = 502
        call.error = UpstreamError(f"upstream said: {PROMPT}")
    elif outcome == "pending":
        from gateway.errors import ApprovalPending

        call.error = ApprovalPending("approval required", extra={"approval_id": "apr_1"})
    else:
        call.timings.update(
            {"forward": 0.25, "redact_out": 0.0004, "policy_response": 0.0002, "settle": 0.0001}
        )
        call.deployment = "openai-east"
        call.upstream_model = f"{model}-2024-07-18"
        call.upstream_status = 200
        call.usage = Usage(*tokens)
        call.cost_usd = cost
        if stream:
            call.response = ModelResponse(status=200, headers={}, events=_no_events())
            call.streamed = StreamAnswer(
                ({"id": "call_1", "name": "send_email", "arguments": PROMPT},), "tool_calls"
            )
        else:
            call.response = ModelResponse(
                status=200,
                headers={},
                json={
                    "choices": [
                        {
                            "finish_reason": "tool_calls",
                            "message": {
                                "content": f"Sure: {EMAIL}",
                                "tool_calls": [
                                    {
                                        "id": "call_1",
                                        "type": "function",
                                        "function": {
                                            "name": "send_email",
                                            "arguments": f'{{"to": "{EMAIL}"}}',
                                        },
                                    }
                                ],
                            },
                        }
                    ],
                },
            )
    _publish(call, **state)
    call.started = time.perf_counter() - 0.3
    return call


_ASK_KEYS = ("phase", "items", "decision", "revision")


def _publish(
    call: Call,
    *,
    reservation: dict[str, Any] | None = None,
    approval: dict[str, Any] | None = None,
    **fields: Any,
) -> None:
    """What the stages would have published on the call (typed fields of ``Call``)."""
    if reservation is not None:
        call.limits = LimitsView(estimate={}, reserved_usd=reservation["reserved_usd"])
    if approval is not None:
        ask = ApprovalAsk(
            approval.get("phase", "request"),
            tuple(approval.get("items") or ()),
            approval.get("decision"),
            approval.get("revision"),
        )
        call.approval_ask = ask
        outcome = {k: v for k, v in approval.items() if k not in _ASK_KEYS}
        if outcome:
            call.approval = ApprovalOutcome(ask, {"phase": ask.phase, **outcome})
    for name, value in fields.items():
        setattr(call, name, value)


async def _no_events():  # pragma: no cover - never iterated
    if False:
        yield None


AUDITOR, APPROVER, ADMIN = (
    "wg-admin-auditor-key-000000000000",
    "wg-admin-approver-key-0000000000",
    "wg-admin-root-0000",
)


def build_app(service) -> Starlette:
    """The audit routes (and the spend report) on a bare app with three admin keys (auditor, approver, admin)."""
    keys = KeyStore(
        {},
        {
            hash_key(AUDITOR): AdminPrincipal("adm-aud", "audrey", frozenset({"auditor"})),
            hash_key(APPROVER): AdminPrincipal("adm-appr", "percy", frozenset({"approver"})),
            hash_key(ADMIN): AdminPrincipal("adm-root", "root", frozenset({"admin"})),
        },
    )
    ctx = AppContext(settings=Settings(), keys=keys, models=ModelCatalog({}))
    # Wired as the composition root does: the limits component serves /admin/spend/report
    # from the audit log it is given.
    audit = Audit(Observability())
    audit.service = service

    async def render(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, GatewayError)
        return Response(exc.to_json(), status_code=exc.status, media_type="application/json")

    app = Starlette(routes=audit.routes() + Limits(audit).routes(), exception_handlers={GatewayError: render})
    app.state.ctx = ctx
    return app


async def tamper(service, sql: str, *params) -> None:
    """Run SQL directly on the store, as an attacker with database access would."""
    store = service.store
    if store.name == "sqlite":
        db = sqlite3.connect(store.path)
        db.execute(re.sub(r"\$(\d+)", r"?\1", sql), params)
        db.commit()
        db.close()
        return
    # As a superuser with triggers off: the append-only triggers refuse even the owner.
    settings = {"search_path": store.schema, "session_replication_role": "replica"}
    conn = await asyncpg.connect(store.dsn, server_settings=settings)
    try:
        await conn.execute(sql, *params)
    finally:
        await conn.close()


async def all_stored_text(service) -> bytes:
    """Every byte the store holds: raw rows, and for SQLite the file itself."""
    store = service.store
    if store.name == "sqlite":
        db = sqlite3.connect(store.path)
        rows = db.execute("SELECT * FROM audit_events").fetchall()
        db.close()
        files = b"".join(p.read_bytes() for p in store.path.parent.glob("audit.db*"))
        return repr(rows).encode() + files
    conn = await asyncpg.connect(store.dsn, server_settings={"search_path": store.schema})
    try:
        rows = await conn.fetch("SELECT * FROM audit_events")
    finally:
        await conn.close()
    return repr([tuple(r) for r in rows]).encode()


async def _pg_async(sql: str) -> None:
    conn = await asyncpg.connect(PG_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def pg_execute(sql: str) -> None:
    """Run one statement from sync fixture code, on a thread so the test loop is left alone."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(asyncio.run, _pg_async(sql)).result()


async def finish(stages: Stage | list[Stage], call: Call) -> None:
    """Run finish stages as the HTTP layer does: the hooks, then (once the answer would be
    out) what they deferred: the call's metrics and span."""
    pipeline = Pipeline(stages if isinstance(stages, list) else [stages])
    try:
        await pipeline.finish(call)
    finally:
        await pipeline.after_answer(call)
