"""The approval record: what a reviewer sees, what the store keeps, what the audit log gets.

The record never holds the model's answer: that is sealed separately (``crypto.py``) and
handed only to the caller that caused the approval. Nor does it hold the caller's redacted
values: its tool calls carry placeholders (``<IBAN_CODE_1>``), and the real arguments are
sealed beside it (``has_values``), opened only for a reviewer of the approval's groups.
``public`` is therefore safe to show to reviewers, send to webhooks and write to the audit log.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

ID_PREFIX = "apr_"

#: A clock in seconds (``time.time`` for TTLs and expiry, ``time.monotonic`` for lock leases).
#: Injected so tests advance time instead of sleeping.
Clock = Callable[[], float]


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


def new_id() -> str:
    return ID_PREFIX + secrets.token_hex(12)


def valid_id(value: str) -> bool:
    body = value[len(ID_PREFIX) :]
    return value.startswith(ID_PREFIX) and 0 < len(body) <= 64 and all(c in "0123456789abcdef" for c in body)


@dataclass(slots=True)
class Vote:
    """One reviewer's approval (``approvals_required`` > 1 needs several distinct ones)."""

    key_id: str
    user: str
    at: float
    comment: str | None = None


@dataclass(slots=True)
class Approval:
    id: str
    status: Status
    phase: str  # "request" | "response"
    mode: str  # "hold" | "defer"
    created_at: float
    expires_at: float
    principal: dict[str, Any]  # key_id, team, user
    endpoint: str
    model: str
    fingerprint: str
    agent_id: str | None = None
    run_id: str | None = None
    request_id: str | None = None
    reasons: list[str] = field(default_factory=list)
    #: ``[{"id", "name", "arguments"}]``, arguments parsed (after redaction).
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    #: Any one of these groups may decide (empty: any key with role ``approver``).
    groups: list[str] = field(default_factory=list)
    approvals_required: int = 1
    votes: list[Vote] = field(default_factory=list)
    decided_at: float | None = None
    decided_by: str | None = None  # the reviewer's user (the last vote's, for approvals)
    comment: str | None = None
    #: Why it ended without a reviewer ("approval timed out", "approval expired", ...).
    outcome_reason: str | None = None
    has_answer: bool = False
    #: Times an approved answer was released (request phase: the request let through); at most 1.
    uses: int = 0
    #: The request id of the request waiting on it now (a hold); an identical re-send joining
    #: the approval takes it over, and only the holder (or an explicit re-send) may redeem it.
    holder: str | None = None
    #: How long a request waiting on it holds (so a joining re-send holds as long).
    hold_s: float | None = None
    #: The real tool-call arguments are sealed beside the record (shown to its reviewers only).
    has_values: bool = False
    #: ``{field: short digest}`` of the request, so a mismatching re-send is told which fields differ.
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def decided(self) -> bool:
        return self.status is not Status.PENDING

    def overdue(self, now: float | None = None) -> bool:
        """Pending past its expiry (``now``: the service's clock; the wall clock if not given)."""
        return self.status is Status.PENDING and (now if now is not None else time.time()) >= self.expires_at

    def tool_names(self) -> list[str]:
        return [str(c.get("name") or "tool") for c in self.tool_calls]

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["status"] = self.status.value
        return doc

    def public(self) -> dict[str, Any]:
        """The reviewer's view: everything but bookkeeping (``object`` tag added, OpenAI style)."""
        doc = self.to_dict()
        doc.pop("fields", None)
        doc["object"] = "approval"
        return doc

    def caller_view(self) -> dict[str, Any]:
        """What the agent that caused it may poll: status and outcome, not reviewer identities."""
        return {
            "object": "approval",
            "id": self.id,
            "status": self.status.value,
            "phase": self.phase,
            "mode": self.mode,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "decided_at": self.decided_at,
            "reasons": list(self.reasons),
            "tools": self.tool_names(),
            "comment": self.comment,
            "outcome_reason": self.outcome_reason,
            "approvals": len(self.votes),
            "approvals_required": self.approvals_required,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Approval:
        data = dict(doc)
        data.pop("object", None)
        data["status"] = Status(data["status"])
        data["votes"] = [Vote(**v) for v in data.get("votes") or []]
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in data.items() if k in known})
