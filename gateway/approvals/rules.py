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
from gateway.keys.store import AdminPrincipal

TIMED_OUT = "approval timed out"
EXPIRED = "approval expired"


def _copy(a: Approval) -> Approval:
    return Approval.from_dict(a.to_dict())


def ensure_open(a: Approval, now: float) -> None:
    if a.status is Status.EXPIRED or a.overdue(now):
        raise Conflict(f"Approval {a.id} has expired.", code="approval_expired")
    if a.status is not Status.PENDING:
        raise AlreadyDecided(
            f"Approval {a.id} was already {a.status.value}.", extra={"status": a.status.value}
        )


def may_review(a: Approval, reviewer: AdminPrincipal) -> None:
    """Group membership: any one of the approval's groups (``*`` in the key's groups: all)."""
    if a.groups and "*" not in reviewer.groups and not reviewer.groups.intersection(a.groups):
        raise PermissionDenied(
            f"Approval {a.id} needs a reviewer from group {' or '.join(a.groups)}.",
            code="approver_group_required",
        )


def is_requester(a: Approval, reviewer: AdminPrincipal) -> bool:
    """Four-eyes: admin and agent keys are separate lists, so compare the people behind them."""
    caused_by = {v for v in (a.principal.get("user"), a.principal.get("key_id")) if v}
    return reviewer.user in caused_by or reviewer.key_id in caused_by


def refuse_requester(a: Approval, reviewer: AdminPrincipal) -> None:
    """Four-eyes for both decisions: the person whose call is held decides neither way (a
    denial is a decision too, and its comment goes back to the agent as the reviewer's). The
    caller may still withdraw its own call (``cancel``, with the agent's key)."""
    if is_requester(a, reviewer):
        raise PermissionDenied(
            f"Four-eyes: {reviewer.user} caused approval {a.id} and cannot decide it "
            "(approve or deny); another reviewer of its group must.",
            code="self_approval_forbidden",
        )


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
        refuse_requester(a, reviewer)
        if any(v.user == reviewer.user for v in a.votes):
            raise Conflict(
                f"{reviewer.user} already approved {a.id}; it needs a different reviewer.",
                code="already_voted",
            )
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
    """Any eligible reviewer but the requester (four-eyes holds for both decisions)."""

    def change(a: Approval) -> Approval:
        if a.overdue(now):
            return _expired(a, EXPIRED, now)
        ensure_open(a, now)
        may_review(a, reviewer)
        refuse_requester(a, reviewer)
        new = _copy(a)
        new.status = Status.DENIED
        new.decided_at = now
        new.decided_by = reviewer.user
        new.comment = comment
        return new

    return change


def expire(reason: str, now: float, *, only_if_due: bool, holder: str | None = None) -> Change:
    """Pending → expired. ``only_if_due``: the sweep, which must not expire what is not overdue.
    ``holder``: a hold that timed out, which must not expire an approval a newer identical
    request has joined and is still waiting on."""

    def change(a: Approval) -> Approval | None:
        if a.status is not Status.PENDING or (only_if_due and not a.overdue(now)):
            return None
        if holder is not None and a.holder not in (None, holder) and not a.overdue(now):
            return None
        return _expired(a, reason, now)

    return change


def claim(request_id: str) -> Change:
    """An identical re-send joins a pending approval and becomes the request waiting on it."""

    def change(a: Approval) -> Approval | None:
        if a.status is not Status.PENDING or a.holder == request_id:
            return None
        new = _copy(a)
        new.holder = request_id
        return new

    return change


def cancel(key_id: str, now: float) -> Change:
    def change(a: Approval) -> Approval:
        if a.principal.get("key_id") != key_id:
            raise PermissionDenied(
                "Only the key that caused an approval may withdraw it.", code="not_your_approval"
            )
        if a.status is not Status.PENDING:
            raise AlreadyDecided(
                f"Approval {a.id} was already {a.status.value}.", extra={"status": a.status.value}
            )
        new = _copy(a)
        new.status = Status.CANCELLED
        new.decided_at = now
        new.outcome_reason = "withdrawn by the caller"
        return new

    return change


def consume(claimant: str | None = None) -> Change:
    """An approved answer is released once (request phase: one request goes through).

    ``claimant``: the request id of a request that held the approval; it may redeem only while
    it is still the holder (a newer identical request that joined took it over). An explicit
    re-send (``X-Wardgate-Approval-Id``) passes None: whoever comes first, once.
    """

    def change(a: Approval) -> Approval:
        if a.uses >= 1:
            raise Conflict(
                f"Approval {a.id} was already used; a new request needs a new approval.",
                code="approval_used",
                headers=NO_RETRY,
            )
        if claimant is not None and a.holder not in (None, claimant):
            raise superseded(a)
        new = _copy(a)
        new.uses += 1
        return new

    return change


#: The openai SDK retries a 409 unless told not to; these answers do not change on a retry.
NO_RETRY = {"x-should-retry": "false"}


def superseded(a: Approval) -> Conflict:
    return Conflict(
        f"Approval {a.id} was taken over by an identical request re-sent with the same key, which "
        "now waits for it (an SDK retry joins the approval instead of asking again).",
        code="approval_superseded",
        headers=NO_RETRY,
    )
