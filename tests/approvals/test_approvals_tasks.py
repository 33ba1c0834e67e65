"""Cancellation survives libraries that swallow it (redis-py does, mid-command)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from gateway.approvals.memory import MemoryApprovalStore
from gateway.approvals.model import Approval
from gateway.approvals.tasks import stop
from tests.approvals.conftest import new_approval


class SwallowingStore(MemoryApprovalStore):
    """``get`` swallows a cancellation, like redis-py 8.1 does when one lands mid-command."""

    async def get(self, approval_id: str) -> Approval | None:
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.sleep(0.05)
        return await super().get(approval_id)


async def test_a_held_request_still_ends_when_its_cancellation_was_swallowed(make_service) -> None:
    service = await make_service("memory", store=SwallowingStore())
    approval = await new_approval(service)
    waiter = asyncio.create_task(service.wait(approval.id, 30.0))
    await asyncio.sleep(0.01)  # inside the swallowing get
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(waiter, 1.0)
    assert len(service.waiters) == 0


async def test_stop_ends_a_loop_whose_first_cancellations_are_swallowed() -> None:
    swallowed = 0

    async def stubborn() -> None:
        nonlocal swallowed
        while True:
            try:
                await asyncio.sleep(1)
            except asyncio.CancelledError:
                swallowed += 1
                if swallowed >= 3:
                    raise

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await stop(task)
    assert task.cancelled() and swallowed == 3
