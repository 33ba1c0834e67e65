"""Build audit events: one from a finished ``Call``, others from ``record(kind, payload)``.

A call event is assembled from a whitelist of what the ``Call`` summarises (identities,
decisions, counts, numbers), never from message contents: there is no code path from
``call.body`` or the answer's text into an event. Tool calls appear by id and name only.

The chain fields (``shard``, ``seq``, ``prev_hash``) are filled in by ``chain.ShardChain``
when the event is sealed, just before its commit.
"""

from __future__ import annotations

import time
from typing import Any

from gateway.audit.schema import KIND_CALL, SCHEMA_VERSION, iso_time, new_event_id, usd_to_nano
from gateway.audit.scrub import clean, scrub
from gateway.audit.why import why
from gateway.call import Call, Decision
from gateway.callstate import approval_view
from gateway.errors import (
    ApprovalPending,
    GatewayError,
    PermissionDenied,
    RateLimited,
    SensitiveDataBlocked,
    UpstreamError,
)

#: Decision ``detail`` keys worth keeping: small, bounded and free of content.
_DETAIL_KEYS = (
    "rule",
    "rules",
    "code",
    "mode",
    "scope",
    "scopes",
    "action",
    "entities",
    "approval_id",
    "tool_call_ids",
)
_APPROVAL_KEYS = (
    "id",
    "approval_id",
    "status",
    "outcome",
    "reviewer",
    "comment",
    "mode",
    "phase",
    "group",
    "approvers",
    "expires_at",
    "decided_at",
    "created_at",
)
_DENY_ERRORS = (PermissionDenied, RateLimited, SensitiveDataBlocked)


def base_event(kind: str, ts: float | None = None) -> dict[str, Any]:
    now = time.time() if ts is None else ts
    return {"v": SCHEMA_VERSION, "id": new_event_id(now), "kind": kind, "ts": now, "time": iso_time(now)}


def _decision(d: Decision) -> dict[str, Any]:
    out: dict[str, Any] = {
        "stage": d.stage,
        "phase": d.phase,
        "outcome": d.outcome,
        "reasons": [str(r) for r in d.reasons],
        "revision": d.revision,
    }
    detail = {k: d.detail[k] for k in _DETAIL_KEYS if k in d.detail}
    if detail:
        out["detail"] = scrub(detail)
    reasoning = why(d.detail) if d.stage.startswith("policy") else None
    if reasoning is not None:
        out["why"] = reasoning
    return out


def summary_decision(call: Call) -> str:
    """One word for the ``decision`` filter: allow | deny | pending | error."""
    err = call.error
    if isinstance(err, ApprovalPending):
        return "pending"
    if isinstance(err, _DENY_ERRORS) or any(d.outcome == "deny" for d in call.decisions):
        return "deny"
    if err is not None:
        return "error"
    return "allow"


def call_status(call: Call) -> int | None:
    err = call.error
    if isinstance(err, GatewayError):
        return err.status
    if err is not None:
        return 500
    if call.response is not None:
        return call.response.status
    return call.upstream_status


def _error(err: Exception | None) -> dict[str, Any] | None:
    if err is None:
        return None
    if isinstance(err, GatewayError):
        return {"class": type(err).__name__, "type": err.type, "code": err.code, "status": err.status}
    # A bug, not a refusal: the class name only, never the message (it may quote input).
    return {"class": type(err).__name__, "type": "server_error", "code": "internal_error", "status": 500}


def _redaction(pii: Any) -> dict[str, Any] | None:
    if not isinstance(pii, dict):
        return None
    entities = pii.get("entities") or {}
    locations = pii.get("locations") or []
    return {
        "entities": {str(k): int(v) for k, v in entities.items() if isinstance(v, int | float)},
        "locations": [
            {"path": str(loc.get("path")), "type": str(loc.get("type")), "count": int(loc.get("count") or 0)}
            for loc in locations
            if isinstance(loc, dict)
        ][:100],
        "unscanned": int(pii.get("unscanned") or 0),
    }


def _approval(approval: Any) -> dict[str, Any] | None:
    if not isinstance(approval, dict):
        return None
    out: dict[str, Any] = {k: approval[k] for k in _APPROVAL_KEYS if k in approval}
    if "approval_id" in out and "id" not in out:
        out["id"] = out.pop("approval_id")
    items = approval.get("items")
    if isinstance(items, list):
        out["reasons"] = [str(i.get("reason")) for i in items if isinstance(i, dict) and i.get("reason")]
        out["tool_call_ids"] = [
            str(i["tool_call_id"]) for i in items if isinstance(i, dict) and i.get("tool_call_id")
        ]
    decision = approval.get("decision")
    if isinstance(decision, dict):
        out.update(
            {k: decision[k] for k in ("status", "reviewer", "comment") if k in decision and k not in out}
        )
    return scrub(out)


def _reserved_usd(call: Call) -> float | None:
    """What the limits stage reserved before forwarding (to compare with what was settled)."""
    if call.limits is not None:
        return float(call.limits.reserved_usd)
    if call.budget is not None:
        return float(call.budget.estimate_usd)
    return None


def _settle_basis(call: Call) -> str | None:
    """How the limits stage priced the call: usage, reservation (stream cut), upstream_error..."""
    basis = call.limits.settle_basis if call.limits is not None else None
    return str(basis) if basis is not None else None


def tool_calls(call: Call) -> list[dict[str, str]]:
    """Tool calls the model asked for: id and function name, never the arguments."""
    streamed = call.streamed
    if streamed is not None:
        return [{"id": str(t.get("id", "")), "name": str(t.get("name", ""))} for t in streamed.tool_calls]
    doc = call.response.json if call.response is not None else None
    if not isinstance(doc, dict):
        return []
    out: list[dict[str, str]] = []
    for choice in doc.get("choices") or ():
        message = choice.get("message") if isinstance(choice, dict) else None
        for tc in (message or {}).get("tool_calls") or ():
            if isinstance(tc, dict):
                out.append(
                    {"id": str(tc.get("id", "")), "name": str((tc.get("function") or {}).get("name", ""))}
                )
    for item in doc.get("output") or ():
        if isinstance(item, dict) and item.get("type") == "function_call":
            out.append({"id": str(item.get("call_id", "")), "name": str(item.get("name", ""))})
    return out


def _upstream(call: Call) -> dict[str, Any]:
    """What the provider side did: the last status, and every attempt (deployment, status,
    error code), so a failed call says what was tried, where, and how each try ended."""
    attempts = call.upstream_attempts
    tried = [{"deployment": a.deployment, "status": a.status, "error": a.error} for a in attempts]
    if tried and tried[-1]["error"] is None and isinstance(call.error, UpstreamError):
        tried[-1]["error"] = call.error.code  # the stream that started there broke mid-way
    return {
        "status": call.upstream_status,
        "retries": call.retries,
        "attempts": len(attempts),
        "tried": tried,
    }


def _finish_reason(call: Call) -> str | None:
    doc = call.response.json if call.response is not None else None
    if isinstance(doc, dict):
        choices = doc.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            return choices[0].get("finish_reason")
        return doc.get("status")
    return call.streamed.finish_reason if call.streamed is not None else None


def build_call_event(call: Call, *, trace_id: str | None = None) -> dict[str, Any]:
    """The audit event of one finished call (chain fields are added when it is sealed)."""
    end = time.perf_counter()
    ev = base_event(KIND_CALL, call.started_wall)
    p = call.principal
    cache = call.cache
    hit = cache is not None and cache.status == "hit"
    # A hit consumed no tokens: its usage (the stored answer's) is the cache section's saving.
    usage = None if hit else call.usage
    reserved = _reserved_usd(call)
    routed = call.routed_model
    ev.update(
        {
            "request_id": call.request_id,
            "trace_id": trace_id,
            "principal": {"key_id": p.key_id, "team": p.team, "user": p.user} if p else None,
            "agent": {"id": call.agent_id, "run_id": call.run_id, "parent_run_id": call.parent_run_id},
            "endpoint": call.endpoint.value,
            "stream": call.stream,
            "model": {
                "requested": call.model or None,
                "used": call.upstream_model or (str(routed) if routed else None),
                "routed": str(routed) if routed else None,
                "deployment": call.deployment,
            },
            "decision": summary_decision(call),
            "decisions": [_decision(d) for d in call.decisions],
            "redaction": _redaction(call.pii),
            "approval": _approval(approval_view(call)),
            "tool_calls": tool_calls(call),
            "finish_reason": _finish_reason(call),
            "usage": (
                {
                    "input_tokens": usage.input_tokens,
                    "output_tokens": usage.output_tokens,
                    "cached_tokens": usage.cached_tokens,
                }
                if usage
                else None
            ),
            "cost": {
                "settled_usd": call.cost_usd,
                "settled_nusd": usd_to_nano(call.cost_usd),
                "reserved_usd": reserved,
                "basis": _settle_basis(call),
            },
            "latency_ms": {
                "total": round((end - call.started) * 1000, 3),
                "stages": {k: round(v * 1000, 3) for k, v in call.timings.items()},
            },
            "upstream": _upstream(call),
            "status": call_status(call),
            "error": _error(call.error),
            "client_disconnected": call.client_disconnected,
        }
    )
    if cache is not None:
        ev["cache"] = cache.as_event()
    return ev


def fallback_call_event(call: Call, exc: Exception, *, trace_id: str | None = None) -> dict[str, Any]:
    """The event of a call whose full event could not be built: every call is still audited.

    Only fields that cannot fail are used; ``build_error`` names the bug to fix.
    """
    ev = base_event(KIND_CALL, call.started_wall if isinstance(call.started_wall, float) else None)
    p = call.principal
    ev.update(
        {
            "request_id": str(call.request_id),
            "trace_id": trace_id,
            "principal": {"key_id": p.key_id, "team": p.team, "user": p.user} if p else None,
            "agent": {"id": call.agent_id, "run_id": call.run_id, "parent_run_id": call.parent_run_id},
            "endpoint": str(call.endpoint),
            "model": {"requested": str(call.model) or None, "used": None},
            "decision": "error" if call.error is not None else "allow",
            "status": call_status(call) if isinstance(call.error, GatewayError | None) else 500,
            "build_error": type(exc).__name__,
        }
    )
    return ev


#: Payload keys lifted into the event's top-level identity fields so they are queryable.
_PRINCIPAL_KEYS = ("key_id", "team", "user")
_AGENT_KEYS = {"agent_id": "id", "run_id": "run_id", "parent_run_id": "parent_run_id"}


def build_record_event(kind: str, payload: dict[str, Any], *, ts: float | None = None) -> dict[str, Any]:
    """An event for an approval change, admin action, policy revision... from another area.

    Identity fields in the payload (``principal`` / ``key_id`` / ``team`` / ``agent_id`` /
    ``run_id`` / ``model`` / ``request_id``) are lifted so the same filters find these events,
    and a ``cost`` section with ``settled_nusd`` so the spend report sums it;
    the whole payload, scrubbed of secrets and of content (tool arguments, messages), is kept
    under ``data``.
    """
    ev = base_event(kind, ts)
    data = clean(payload)
    principal = _v if isinstance(_v := data.get("principal"), dict) else {}
    lifted = {k: principal.get(k, data.get(k)) for k in _PRINCIPAL_KEYS}
    if any(v is not None for v in lifted.values()):
        ev["principal"] = lifted
    agent = _v if isinstance(_v := data.get("agent"), dict) else {}
    lifted_agent = {dst: agent.get(dst, data.get(src)) for src, dst in _AGENT_KEYS.items()}
    if any(v is not None for v in lifted_agent.values()):
        ev["agent"] = lifted_agent
    model = data.get("model")
    if isinstance(model, str):
        ev["model"] = {"requested": model, "used": None}
    cost = data.get("cost")
    if isinstance(cost, dict) and isinstance(cost.get("settled_nusd"), int):
        ev["cost"] = cost  # a priced action (an MCP tool call): summed by the spend report
    for key in ("request_id", "decision", "trace_id"):
        if isinstance(data.get(key), str):
            ev[key] = data[key]
    ev["data"] = data
    return ev
