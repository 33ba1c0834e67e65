"""In-process approval store: the embedded default (one process, nothing survives a restart).

Atomicity comes from the event loop: nothing awaits between the version check and the
write in ``_cas``, so no other coroutine can interleave. Listeners are told synchronously.
"""

from __future__ import annotations

import bisect
import time

from gateway.approvals.model import Approval, Clock, Status
from gateway.approvals.store import ApprovalStore, approval_join_key, order_score


class MemoryApprovalStore(ApprovalStore):
    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        """``clock``: what lock leases (``try_lock``) are measured on."""
        super().__init__()
        self._clock = clock
        self._docs: dict[str, tuple[dict, int]] = {}
        self._answers: dict[str, bytes] = {}
        self._values: dict[str, bytes] = {}
        #: join key → id of the pending approval an identical request joins.
        self._joins: dict[str, str] = {}
        #: (score, id) ascending; listing walks it backwards.
        self._order: list[tuple[int, str]] = []
        self._pending: dict[str, float] = {}
        self._locks: dict[str, float] = {}

    async def create(
        self,
        approval: Approval,
        sealed_answer: bytes | None,
        sealed_values: bytes | None = None,
        *,
        join: bool = False,
    ) -> str | None:
        key = approval_join_key(approval)
        current = self._joins.get(key)
        if join and current is not None:
            return current
        if approval.id in self._docs:
            raise ValueError(f"duplicate approval id {approval.id}")
        self._docs[approval.id] = (approval.to_dict(), 1)
        if sealed_answer is not None:
            self._answers[approval.id] = sealed_answer
        if sealed_values is not None:
            self._values[approval.id] = sealed_values
        bisect.insort(self._order, (order_score(approval), approval.id))
        if approval.status is Status.PENDING:
            self._pending[approval.id] = approval.expires_at
            self._joins.setdefault(key, approval.id)
        self._emit("created", Approval.from_dict(approval.to_dict()))
        return None

    async def get_values(self, approval_id: str) -> bytes | None:
        return self._values.get(approval_id)

    async def get(self, approval_id: str) -> Approval | None:
        entry = self._docs.get(approval_id)
        return Approval.from_dict(entry[0]) if entry else None

    async def get_answer(self, approval_id: str) -> bytes | None:
        return self._answers.get(approval_id)

    async def _load_versioned(self, approval_id: str) -> tuple[Approval, int] | None:
        entry = self._docs.get(approval_id)
        return (Approval.from_dict(entry[0]), entry[1]) if entry else None

    async def _cas(self, approval: Approval, version: int) -> bool:
        entry = self._docs.get(approval.id)
        if entry is None or entry[1] != version:
            return False
        self._docs[approval.id] = (approval.to_dict(), version + 1)
        if approval.status is Status.PENDING:
            self._pending[approval.id] = approval.expires_at
        else:
            self._pending.pop(approval.id, None)
            key = approval_join_key(approval)
            if self._joins.get(key) == approval.id:
                del self._joins[key]
        self._emit("updated", Approval.from_dict(approval.to_dict()))
        return True

    async def _scan(self, before: tuple[int, str] | None, count: int) -> list[tuple[int, str]]:
        end = bisect.bisect_left(self._order, before) if before else len(self._order)
        return list(reversed(self._order[max(0, end - count) : end]))

    async def _load_many(self, ids: list[str]) -> list[Approval | None]:
        return [await self.get(i) for i in ids]

    async def due(self, now: float, limit: int = 500) -> list[str]:
        return [i for i, exp in self._pending.items() if exp <= now][:limit]

    async def count_pending(self) -> int:
        return len(self._pending)

    async def try_lock(self, name: str, ttl_s: float) -> bool:
        now = self._clock()
        if self._locks.get(name, 0.0) > now:
            return False
        self._locks[name] = now + ttl_s
        return True

    async def purge(self, before: float) -> int:
        cut = bisect.bisect_left(self._order, (int(before * 1_000_000), ""))
        keep: list[tuple[int, str]] = []
        dropped = 0
        for score, approval_id in self._order[:cut]:
            if approval_id in self._pending:
                keep.append((score, approval_id))
                continue
            self._docs.pop(approval_id, None)
            self._answers.pop(approval_id, None)
            self._values.pop(approval_id, None)
            dropped += 1
        self._order = keep + self._order[cut:]
        return dropped
