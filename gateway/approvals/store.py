"""The ``ApprovalStore`` interface, and the parts every backend shares.

A store keeps records, their sealed answers, and tells listeners about every change. All
state changes go through ``update(id, change)``: an optimistic compare-and-set loop where
``change`` is a pure function of the current record (it may raise a ``GatewayError`` to
refuse). Backends provide one atomic primitive, "write this if the version is still N"
(a Lua script in Redis, a plain check in memory where nothing can interleave), so two
reviewers racing on one approval can never both win: the loser re-reads, finds it decided,
and its ``change`` raises ``AlreadyDecided``. Approvals with ``approvals_required`` > 1 use
the same loop, so concurrent votes all land.

Listeners get ``(kind, approval)`` for every change on any replica (``created``,
``updated``), and ``("resync", None)`` when change messages may have been missed (a
reconnect): waiters then re-read instead of trusting silence.

Joining: a pending approval is indexed by ``join_key(key_id, fingerprint, agent, run)`` for as long as it
is pending. ``create(..., join=True)`` checks the index and writes the record in one atomic
step (a Lua script in Redis), so two identical requests racing on two replicas make one
approval, never two; the change that ends the pending state drops the index entry with it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from gateway.approvals.model import Approval
from gateway.errors import BadRequest, Conflict, NotFound

log = logging.getLogger("wardgate.approvals")

Listener = Callable[[str, Approval | None], None]
Change = Callable[[Approval], Approval | None]

_MAX_CAS_ATTEMPTS = 50
#: A filtered list page reads at most this many records before answering with a cursor.
MAX_SCAN = 2000


@dataclass(slots=True)
class ListQuery:
    status: str | None = None
    agent: str | None = None
    run: str | None = None
    team: str | None = None
    cursor: str | None = None
    limit: int = 50

    def matches(self, a: Approval) -> bool:
        return (
            (self.status is None or a.status.value == self.status)
            and (self.agent is None or a.agent_id == self.agent)
            and (self.run is None or a.run_id == self.run)
            and (self.team is None or a.principal.get("team") == self.team)
        )


@dataclass(slots=True)
class Page:
    items: list[Approval]
    next_cursor: str | None


def join_key(key_id: str, fingerprint: str, agent_id: str | None, run_id: str | None) -> str:
    """The index entry an identical request finds: same key, same fingerprint, same agent and
    run (an SDK retry keeps its headers; another run asking the same is another task)."""
    raw = "\0".join((key_id, fingerprint, agent_id or "", run_id or ""))
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def approval_join_key(a: Approval) -> str:
    return join_key(str(a.principal.get("key_id") or ""), a.fingerprint, a.agent_id, a.run_id)


def order_score(a: Approval) -> int:
    """Listing order: creation time in microseconds (newest first), ties broken by id."""
    return int(a.created_at * 1_000_000)


def encode_cursor(score: int, approval_id: str) -> str:
    return base64.urlsafe_b64encode(f"{score}:{approval_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        score, _, approval_id = raw.partition(":")
        return int(score), approval_id
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadRequest("Invalid cursor.", param="cursor") from exc


class ApprovalStore(ABC):
    """Backend-independent logic; subclasses implement the abstract primitives."""

    def __init__(self) -> None:
        self._listeners: list[Listener] = []

    # -- lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Open connections and subscriptions; listeners hear every change after this."""
        return None

    async def close(self) -> None:
        """Release connections."""
        return None

    async def ping(self) -> None:
        """Raise when the store cannot be reached (readiness)."""
        return None

    def not_ready(self) -> str | None:
        """Why the store is not ready although it answers (e.g. its change feed is down)."""
        return None

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def _emit(self, kind: str, approval: Approval | None) -> None:
        for listener in self._listeners:
            try:
                listener(kind, approval)
            except Exception:  # one broken listener must not stop the others
                log.exception("approval listener failed")

    # -- primitives ------------------------------------------------------------------
    @abstractmethod
    async def create(
        self,
        approval: Approval,
        sealed_answer: bytes | None,
        sealed_values: bytes | None = None,
        *,
        join: bool = False,
    ) -> str | None:
        """Store a new record (indexed for joining while pending). With ``join``, if a pending
        approval with the same join key exists, store nothing and return its id."""

    @abstractmethod
    async def get_values(self, approval_id: str) -> bytes | None:
        """The sealed real tool-call arguments, if any."""

    @abstractmethod
    async def get(self, approval_id: str) -> Approval | None: ...

    @abstractmethod
    async def get_answer(self, approval_id: str) -> bytes | None: ...

    @abstractmethod
    async def _load_versioned(self, approval_id: str) -> tuple[Approval, int] | None: ...

    @abstractmethod
    async def _cas(self, approval: Approval, version: int) -> bool:
        """Write ``approval`` if its stored version is still ``version``; notify on success."""

    @abstractmethod
    async def _scan(self, before: tuple[int, str] | None, count: int) -> list[tuple[int, str]]:
        """Up to ``count`` (score, id) pairs strictly before ``before``, newest first."""

    @abstractmethod
    async def _load_many(self, ids: list[str]) -> list[Approval | None]: ...

    @abstractmethod
    async def due(self, now: float, limit: int = 500) -> list[str]:
        """Ids of pending approvals whose expiry has passed."""

    @abstractmethod
    async def count_pending(self) -> int: ...

    @abstractmethod
    async def try_lock(self, name: str, ttl_s: float) -> bool:
        """Take a lock shared by all replicas for ``ttl_s`` (no release: it lapses)."""

    @abstractmethod
    async def purge(self, before: float) -> int:
        """Drop records created before ``before`` that are no longer pending."""

    # -- shared logic ----------------------------------------------------------------
    async def pending(self, limit: int = 100_000) -> list[Approval]:
        """Every pending approval (at most ``limit``): the start-up view of what may be joined."""
        records = await self._load_many(await self.due(float("inf"), limit))
        return [a for a in records if a is not None]

    async def update(self, approval_id: str, change: Change) -> Approval:
        """Apply ``change`` atomically; return the record as stored afterwards."""
        for _ in range(_MAX_CAS_ATTEMPTS):
            loaded = await self._load_versioned(approval_id)
            if loaded is None:
                raise NotFound(f"No approval with id '{approval_id}'.", code="approval_not_found")
            current, version = loaded
            changed = change(current)
            if changed is None:
                return current
            if await self._cas(changed, version):
                return changed
        raise Conflict("The approval is changing too fast; try again.", code="approval_contended")

    async def list(self, query: ListQuery) -> Page:
        before = decode_cursor(query.cursor) if query.cursor else None
        items: list[Approval] = []
        scanned = 0
        batch = max(query.limit, 50)
        while scanned < MAX_SCAN:
            entries = await self._scan(before, batch)
            if not entries:
                return Page(items, None)
            records = await self._load_many([i for _, i in entries])
            for (score, approval_id), record in zip(entries, records, strict=True):
                scanned += 1
                before = (score, approval_id)
                if record is not None and query.matches(record):
                    items.append(record)
                    if len(items) >= query.limit:
                        return Page(items, encode_cursor(score, approval_id))
            if len(entries) < batch:
                return Page(items, None)
        return Page(items, encode_cursor(*before) if before else None)
