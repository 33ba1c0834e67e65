"""Call events carry the right fields for every kind of call, and never a secret."""

from __future__ import annotations

from audit_helpers import CARD, EMAIL, PROMPT, PROVIDER_KEY, SECRET_KEY, all_stored_text, finish, make_call

from gateway.audit.events import build_call_event, build_record_event
from gateway.audit.schema import SCHEMA_VERSION
from gateway.audit.stage import AuditStage
from gateway.audit.store.base import Filters
from gateway.callstate import Budget, LimitsView


def test_allowed_call_event_has_identity_models_usage_cost_and_stage_latency():
    call = make_call(reservation={"reserved_usd": 0.01, "lease": "x"}, routed_model="gpt-4o-mini")
    ev = build_call_event(call, trace_id="ab" * 16)
    assert ev["v"] == SCHEMA_VERSION and ev["kind"] == "call" and ev["id"].startswith("ev_")
    assert ev["request_id"] == call.request_id and ev["trace_id"] == "ab" * 16
    assert ev["principal"] == {"key_id": "key-a", "team": "team-a", "user": "alice"}
    assert ev["agent"] == {"id": "agent-1", "run_id": "run-1", "parent_run_id": "run-0"}
    assert ev["endpoint"] == "chat.completions"
    assert ev["model"]["requested"] == "gpt-4o-mini"
    assert ev["model"]["used"] == "gpt-4o-mini-2024-07-18" and ev["model"]["deployment"] == "openai-east"
    assert ev["decision"] == "allow"
    assert ev["decisions"] == [
        {
            "stage": "policy_request",
            "phase": "request",
            "outcome": "allow",
            "reasons": [],
            "revision": "rev-7",
            "detail": {"rule": "default"},
        }
    ]
    assert ev["usage"] == {"input_tokens": 120, "output_tokens": 30, "cached_tokens": 0}
    assert ev["cost"] == {
        "settled_usd": 0.00125,
        "settled_nusd": 1_250_000,
        "reserved_usd": 0.01,
        "basis": None,
    }
    assert ev["latency_ms"]["stages"]["forward"] == 250.0 and ev["latency_ms"]["total"] >= 300
    assert (
        ev["upstream"] == {"status": 200, "retries": 0, "attempts": 0, "tried": []}
        and ev["status"] == 200
        and ev["error"] is None
    )
    assert ev["tool_calls"] == [{"id": "call_1", "name": "send_email"}]
    assert ev["finish_reason"] == "tool_calls"


def test_denied_call_event_keeps_reasons_and_revision_but_not_decision_detail_contents():
    ev = build_call_event(make_call(outcome="deny"))
    assert ev["decision"] == "deny" and ev["status"] == 403
    assert ev["decisions"][0]["reasons"] == ["model not allowed for team"]
    assert ev["decisions"][0]["revision"] == "rev-7"
    assert ev["decisions"][0]["detail"] == {"rule": "model_allowlist"}
    assert ev["error"] == {
        "class": "Denied",
        "type": "permission_error",
        "code": "policy_denied",
        "status": 403,
    }


def test_failed_call_event_has_upstream_status_retries_and_error_code_without_message():
    ev = build_call_event(make_call(outcome="failed"))
    assert ev["decision"] == "error" and ev["status"] == 502
    assert ev["upstream"] == {"status": 502, "retries": 2, "attempts": 0, "tried": []}
    assert ev["error"]["code"] == "upstream_error" and "message" not in ev["error"]
    assert ev["usage"] is None


def test_pending_approval_call_is_marked_pending():
    ev = build_call_event(
        make_call(
            outcome="pending",
            approval={
                "phase": "response",
                "items": [{"reason": "wire transfer", "tool_call_id": "call_9"}],
                "decision": {"status": "pending"},
                "id": "apr_1",
            },
        )
    )
    assert ev["decision"] == "pending" and ev["status"] == 409
    assert ev["approval"] == {
        "id": "apr_1",
        "phase": "response",
        "reasons": ["wire transfer"],
        "tool_call_ids": ["call_9"],
        "status": "pending",
    }


def test_streamed_redacted_and_approved_call_records_summary_types_and_reviewer():
    pii = {
        "entities": {"EMAIL_ADDRESS": 2, "CREDIT_CARD": 1},
        "locations": [{"path": "messages[0].content", "type": "EMAIL_ADDRESS", "count": 2}],
        "unscanned": 0,
    }
    approval = {
        "id": "apr_2",
        "status": "approved",
        "reviewer": "bob",
        "comment": "ok for this customer",
        "phase": "response",
        "items": [{"reason": "send_email needs review", "tool_call_id": "call_1"}],
    }
    ev = build_call_event(make_call(stream=True, pii=pii, approval=approval))
    assert ev["stream"] is True and ev["tool_calls"] == [{"id": "call_1", "name": "send_email"}]
    assert ev["finish_reason"] == "tool_calls"
    assert ev["redaction"] == pii
    assert ev["approval"]["id"] == "apr_2" and ev["approval"]["status"] == "approved"
    assert ev["approval"]["reviewer"] == "bob" and ev["approval"]["reasons"] == ["send_email needs review"]


def test_record_event_lifts_identity_and_scrubs_secret_fields_and_values():
    ev = build_record_event(
        "admin",
        {
            "action": "key.create",
            "actor": "root",
            "key_id": "key-new",
            "team": "team-b",
            "key": SECRET_KEY,
            "note": f"rotated from {PROVIDER_KEY}",
            "nested": {"api_key": "abc"},
        },
    )
    assert ev["kind"] == "admin" and ev["principal"] == {"key_id": "key-new", "team": "team-b", "user": None}
    assert ev["data"]["key"] == "[redacted]" and ev["data"]["nested"]["api_key"] == "[redacted]"
    assert PROVIDER_KEY not in ev["data"]["note"]


async def test_no_stored_event_contains_keys_pii_or_prompt_text(make_service):
    service = await make_service()
    stage = AuditStage(service)
    pii = {"entities": {"EMAIL_ADDRESS": 1}, "locations": [], "unscanned": 0}
    for outcome in ("allow", "deny", "failed", "pending"):
        await finish(stage, make_call(outcome=outcome, pii=pii))
    await finish(stage, make_call(stream=True, pii=pii))
    await service.record(
        "approval",
        {
            "id": "apr_3",
            "status": "approved",
            "reviewer": "bob",
            "authorization": f"Bearer {SECRET_KEY}",
            "run_id": "run-1",
        },
    )
    await service.record("admin", {"action": "key.create", "key": SECRET_KEY, "provider_key": PROVIDER_KEY})
    events = await service.store.query(Filters(), limit=100)
    assert len(events) >= 7
    stored = await all_stored_text(service)
    for secret in (SECRET_KEY, PROVIDER_KEY, EMAIL, CARD, PROMPT, "Bearer"):
        assert secret.encode() not in stored, f"{secret!r} leaked into the audit store"


def test_approval_record_keeps_tool_names_but_not_their_arguments():
    ev = build_record_event(
        "approval",
        {
            "id": "apr_1",
            "status": "approved",
            "decided_by": "bob",
            "principal": {"key_id": "k", "team": "t"},
            "run_id": "run-1",
            "tool_calls": [{"id": "call_1", "name": "wire_money", "arguments": {"iban": "DE89..."}}],
        },
    )
    assert ev["principal"]["key_id"] == "k" and ev["agent"]["run_id"] == "run-1"
    assert ev["data"]["tool_calls"] == [{"id": "call_1", "name": "wire_money", "arguments": "[omitted]"}]


def test_reserved_amount_and_basis_are_what_the_limits_stage_published():
    call = make_call()
    call.limits = LimitsView(estimate={}, reserved_usd=0.0025, settle_basis="usage")
    ev = build_call_event(call)
    assert ev["cost"]["reserved_usd"] == 0.0025 and ev["cost"]["basis"] == "usage"
    nothing_reserved = make_call()
    nothing_reserved.budget = Budget(0.004)  # the store was down: only the estimate is known
    assert build_call_event(nothing_reserved)["cost"]["reserved_usd"] == 0.004


async def test_a_malformed_field_from_another_stage_still_yields_an_event(make_service):
    service = await make_service()
    call = make_call()
    call.usage = "not a usage object"  # type: ignore[assignment]
    await finish(AuditStage(service), call)
    [ev] = await service.store.query(Filters(request_id=call.request_id))
    assert ev["build_error"] == "AttributeError" and ev["principal"]["team"] == "team-a"
