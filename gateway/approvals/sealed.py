"""What an approval keeps sealed beside its record: the held answer and the real values.

The record itself (``model.py``) carries placeholders only, so it can be listed, streamed to
reviewers and audited. Two things are sealed (``crypto.py``) and stored apart: the model's
answer a hold or defer keeps for the caller, and the tool calls with the caller's real
values, opened only for the approval's reviewers. Both are opened here and nowhere else, so
the question "who may see the real values" has one answer in the code.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from gateway.approvals.crypto import AnswerSealer, SealError
from gateway.approvals.model import Approval
from gateway.approvals.store import ApprovalStore

log = logging.getLogger("wardgate.approvals")


class SealedContents:
    __slots__ = ("_sealer", "_store")

    def __init__(self, store: ApprovalStore, sealer: AnswerSealer) -> None:
        self._store = store
        self._sealer = sealer

    def seal(self, document: Any) -> bytes | None:
        """A JSON document sealed for storing (None stays None)."""
        return self._sealer.seal(orjson.dumps(document)) if document is not None else None

    async def answer(self, approval: Approval) -> dict[str, Any] | None:
        """The held answer, opened. Callers must have checked it is the original caller asking."""
        sealed = await self._store.get_answer(approval.id) if approval.has_answer else None
        if sealed is None:
            return None
        try:
            answer: dict[str, Any] | None = orjson.loads(self._sealer.open(sealed))
        except SealError:
            log.error(
                "approval %s: the held answer cannot be opened (answer key differs between replicas?)",
                approval.id,
            )
            raise
        return answer

    async def real_tool_calls(self, approval: Approval) -> list[dict[str, Any]] | None:
        """The tool calls with the caller's real values, opened. Only for the approval's reviewers;
        never logged, never in an audit event or a metric."""
        if not approval.has_values:
            return None
        sealed = await self._store.get_values(approval.id)
        if sealed is None:
            return None
        try:
            values = orjson.loads(self._sealer.open(sealed))
        except SealError:
            log.error(
                "approval %s: the real argument values cannot be opened (answer key differs between "
                "replicas?)",
                approval.id,
            )
            return None
        return values if isinstance(values, list) else None
