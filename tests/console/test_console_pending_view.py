"""The inbox's pending view follows the change feed, on either backend, and recovers when its
feed ends (it fell behind) or a change was missed (the periodic reload)."""

from __future__ import annotations

from typing import Any

import pytest

from gateway.console.pending import PendingView
from tests.approvals.conftest import FINANCE, new_approval
from tests.approvals.conftest import make_service as make_service  # the fixture, used by name
from tests.waiting import FakeClock, wait_until_async


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_the_view_follows_creations_and_decisions(make_service: Any, backend: str) -> None:
    service = await make_service(backend)
    first = await new_approval(service)
    view = PendingView(service)
    assert [a.id for a in await view.approvals()] == [first.id]
    second = await new_approval(service)
    listed = await wait_until_async(
        lambda: _ids(view, {first.id, second.id}), message="the new approval is not in the view"
    )
    assert listed
    await service.deny(first.id, FINANCE, "no")
    await wait_until_async(lambda: _ids(view, {second.id}), message="the denied approval is still listed")
    view.close()


async def test_a_feed_that_ended_or_a_missed_change_is_reloaded(make_service: Any) -> None:
    clock = FakeClock()
    service = await make_service("memory", clock=clock)
    view = PendingView(service, resync_s=30.0)
    assert await view.approvals() == []
    # the view's feed ends (as when it fell QUEUE_SIZE changes behind while nobody looked)
    assert view._feed is not None
    service._subscribers.end_all()
    created = await new_approval(service)
    assert [a.id for a in await view.approvals()] == [created.id]  # reloaded after the end marker
    # a change the feed never delivered: seen at the next reload
    service.unsubscribe(view._feed)  # type: ignore[arg-type]
    missed = await new_approval(service)
    assert missed.id not in [a.id for a in await view.approvals()]
    view._loaded_at -= 31
    assert missed.id in [a.id for a in await view.approvals()]
    # overdue approvals leave the list at once, before any sweep
    clock.advance(3600)
    assert await view.approvals() == []
    view.close()


async def _ids(view: PendingView, expected: set[str]) -> bool:
    return {a.id for a in await view.approvals()} == expected
