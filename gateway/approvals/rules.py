"""The state machine of an approval, as pure changes for ``ApprovalStore.update``.

    pending ──approve (enough distinct votes)──▶ approved
       │  ├──deny──────────────────────────────▶ denied
       │  ├──expiry / hold timed out───────────▶ expired
       │  └──caller withdraws──────────────────▶ cancelled
       └── (every other state is final)

Each function returns a ``Change``: given the current record it returns the new one, ``None``
for "nothing to do", or raises the ``GatewayError`` the reviewer or caller should see. Because
the store re-runs the change on the freshest record after losing a race, these checks are
what make "exactly one decision wins" and four-eyes hold under concurrency.
"""

from __future__ import annotations

from gateway.approvals.model import Approval, Status, Vote
from gateway.approvals.store import Change
from gateway.errors import AlreadyDecided, Conflict, PermissionDenied
from gateway.keys import AdminPrincipal

TIMED_OUT = "approval timed out"
EXPIRED = "approval expired"


def _copy(a: Approval) -> Approval:
    return Approval.from_dict(a.to_dict())


def ensure_open(a: Approval, now: float) -> None:
    if a.status is Status.EXPIRED or a.overdue(now):
        raise Conflict(f"Approval {a.id} has expired.", code="approval_expired")
    if a.status is not Status.PENDING:
        raise AlreadyDecided(f"Approval {a.id} was already {a.status.value}.", extra={"status": a.status.value})


def may_review(a: Approval, reviewer: AdminPrincipal) -> None:
    """Group membership: any one of the approval's groups (``*`` in the key's groups: all)."""
    if a.groups and "*" not in reviewer.groups and not reviewer.groups.intersection(a.groups):
        raise PermissionDenied(
            f"Approval {a.id} needs a reviewer from group {' or '.join(a.groups)}.", code="approver_group_required"
        )


def is_requester(a: Approval, reviewer: AdminPrincipal) -> bool:
    """Four-eyes: admin and agent keys are separate lists, so compare the people behind them."""
    caused_by = {v for v in (a.principal.get("user"), a.principal.get("key_id")) if v}
    return reviewer.user in caused_by or reviewer.key_id in caused_by


def _expired(a: Approval, reason: str, now: float) -> Approval:
    new = _copy(a)
    new.status = Status.EXPIRED
    new.decided_at = now
    new.outcome_reason = reason
    return new


def approve(reviewer: AdminPrincipal, comment: str | None, now: float) -> Change:
    """Adds a vote (approved once enough). An overdue approval is expired instead: the caller
    sees status ``expired`` come back and answers 409, and the expiry is recorded once."""

    def change(a: Approval) -> Approval:
        if a.overdue(now):
            return _expired(a, EXPIRED, now)
        ensure_open(a, now)
        may_review(a, reviewer)
        if is_requester(a, reviewer):
            raise PermissionDenied(f"Four-eyes: {reviewer.user} caused approval {a.id} and cannot approve it.",
                                   code="self_approval_forbidden")
        if any(v.user == reviewer.user for v in a.votes):
            raise Conflict(f"{reviewer.user} already approved {a.id}; it needs a different reviewer.",
                           code="already_voted")
        new = _copy(a)
        new.votes.append(Vote(reviewer.key_id, reviewer.user, now, comment))
        if len(new.votes) >= new.approvals_required:
            new.status = Status.APPROVED
            new.decided_at = now
            new.decided_by = reviewer.user
            new.comment = comment
        return new

    return change


def deny(reviewer: AdminPrincipal, comment: str | None, now: float) -> Change:
    """Any eligible reviewer may deny, the requester included (vetoing one's own action is safe)."""

    def change(a: Approval) -> Approval:
        if a.overdue(now):
            return _expired(a, EXPIRED, now)
        ensure_open(a, now)
        may_review(a, reviewer)
        new = _copy(a)
        new.status = Status.DENIED
        new.decided_at = now
        new.decided_by = reviewer.user
        new.comment = comment
        return new

    return change


def expire(reason: str, now: float, *, only_if_due: bool) -> Change:
    """Pending → expired. ``only_if_due``: the sweep, which must not expire what is not overdue."""

    def change(a: Approval) -> Approval | None:
        if a.status is not Status.PENDING or (only_if_due and not a.overdue(now)):
            return None
        return _expired(a, reason, now)

    return change


def cancel(key_id: str, now: float) -> Change:
    def change(a: Approval) -> Approval:
        if a.principal.get("key_id") != key_id:
            raise PermissionDenied("Only the key that caused an approval may withdraw it.", code="not_your_approval")
        if a.status is not Status.PENDING:
            raise AlreadyDecided(f"Approval {a.id} was already {a.status.value}.", extra={"status": a.status.value})
        new = _copy(a)
        new.status = Status.CANCELLED
        new.decided_at = now
        new.outcome_reason = "withdrawn by the caller"
        return new

    return change


def consume(max_uses: int = 1) -> Change:
    """An approved request-phase approval lets exactly one request through."""

    def change(a: Approval) -> Approval:
        if a.uses >= max_uses:
            raise Conflict(f"Approval {a.id} was already used; a new request needs a new approval.",
                           code="approval_used")
        new = _copy(a)
        new.uses += 1
        return new

    return change
