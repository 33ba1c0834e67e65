"""What the console's pages use, handed to every route (``PageRequest.deps``).

Each service is a provider (``None`` while its component is off), read per request like the
admin API's: the console component builds this once, before the app starts, from the
components it was given in ``compose()``. A page that needs another component's data adds a
field here and a constructor argument to ``Console`` (see docs/console.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request

from gateway.keys.store import AdminPrincipal
from gateway.registry import Provider

if TYPE_CHECKING:
    from gateway.approvals.service import ApprovalService
    from gateway.audit.store.base import AuditStore
    from gateway.console.config import ConsoleSettings
    from gateway.console.pending import PendingView
    from gateway.console.sessions import Session, SessionManager
    from gateway.console.templates import Templates
    from gateway.console.throttle import SignInThrottle
    from gateway.keys.api import Deps as KeysDeps
    from gateway.limits.admin import LimitsAdmin
    from gateway.policy.service import PolicyService
    from gateway.recorder import AuditRecorder


#: Sign-in methods: how a session's subject becomes the principal, re-read on every request.
#: ``admin_key``: the subject is the key's SHA-256; the key must still be in the admin list
#: with the same id. (An OIDC method would map its subject to a principal here.)
def _admin_key(request: Request, session: Session) -> AdminPrincipal | None:
    principal: AdminPrincipal | None = request.app.state.ctx.keys.admin_by_hash(session.subject)
    return principal if principal is not None and principal.key_id == session.key_id else None


RESOLVERS = {"admin_key": _admin_key}


def _off() -> None:
    return None


@dataclass(frozen=True, slots=True)
class Deps:
    #: The ``console`` section (its defaults until the app starts).
    settings: Callable[[], ConsoleSettings]
    sessions: Provider[SessionManager]
    templates: Templates
    approvals: Provider[ApprovalService]
    audit_store: Provider[AuditStore]
    audit: Provider[AuditRecorder]
    #: Budgets, spend and reservations (the limits admin) while limits are on.
    limits: Provider[LimitsAdmin] = _off
    #: The policy service (active revision, "try a decision") while the engine is on.
    policy: Provider[PolicyService] = _off
    #: The pending approvals kept from the change feed (the inbox) while the queue is on.
    pending: Provider[PendingView] = _off
    #: Failed sign-ins counted per address and key prefix (while the console is on).
    throttle: Provider[SignInThrottle] = _off
    #: Key creation and revocation, as the admin API does them (None: no keys component).
    keys: KeysDeps | None = None

    def resolve(self, request: Request, session: Session) -> AdminPrincipal | None:
        """The principal behind a live session now, or ``None`` (key revoked, role gone)."""
        resolver = RESOLVERS.get(session.method)
        return resolver(request, session) if resolver is not None else None
