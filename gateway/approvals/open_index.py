"""The joinable view: this replica's index of pending approvals, kept from the change feed.

A request that is identical to one already waiting for a reviewer (same key, fingerprint,
agent and run) joins that approval instead of calling the model again. Every replica keeps
the pending approvals by key and "ask" ``(fingerprint, agent, run)`` from the store's change
feed, so the hot path can tell in process, with no store round trip, whether there is
anything to join (``has``); the store's atomic create-or-join is the backstop when two
identical requests race. After a feed gap (``resync``) the index is rebuilt from the store.
"""

from __future__ import annotations

import logging

from gateway.approvals.model import Approval, Status
from gateway.approvals.store import ApprovalStore

log = logging.getLogger("wardgate.approvals")

#: (fingerprint, agent id, run id): what makes two requests "the same ask".
Ask = tuple[str, str | None, str | None]


def ask_of(approval: Approval) -> Ask:
    return (approval.fingerprint, approval.agent_id, approval.run_id)


class OpenIndex:
    """key_id → {ask: approval id} of the pending approvals this replica has heard of."""

    __slots__ = ("_open",)

    def __init__(self) -> None:
        self._open: dict[str, dict[Ask, str]] = {}

    def track(self, approval: Approval) -> None:
        """Index a pending approval; drop a decided, expired or used one."""
        key_id = str(approval.principal.get("key_id") or "")
        ask = ask_of(approval)
        if approval.status is Status.PENDING:
            self._open.setdefault(key_id, {})[ask] = approval.id
            return
        self.forget(key_id, ask, approval.id)

    def forget(self, key_id: str, ask: Ask, approval_id: str) -> None:
        """Drop the entry, if it still names ``approval_id`` (a newer one may have replaced it)."""
        asks = self._open.get(key_id)
        if asks is not None and asks.get(ask) == approval_id:
            del asks[ask]
            if not asks:
                del self._open[key_id]

    def has(self, key_id: str) -> bool:
        """Whether this key has a pending approval (in process; no store call)."""
        return key_id in self._open

    def find(self, key_id: str, ask: Ask) -> str | None:
        return self._open.get(key_id, {}).get(ask)

    async def load(self, store: ApprovalStore) -> None:
        """Rebuild from the store's pending approvals (at start, and after a feed gap)."""
        try:
            pending = await store.pending()
        except Exception as exc:  # the store's own calls will fail (and answer) if it is really down
            log.warning("approvals: could not load the pending approvals to join: %s", exc)
            return
        self._open = {}
        for approval in pending:
            self.track(approval)
