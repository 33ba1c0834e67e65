"""Where a chain ends, for ``verify``: its head row, read again when a live store moved it.

Also the page prefetch of the walk (reading the next page while this one is checked).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, Protocol

from gateway.audit.chain import Head


class HeadSource(Protocol):
    async def heads(self, since_ts: float = 0.0) -> dict[str, Head]: ...
    async def hash_at(self, shard: str, seq: int) -> str | None: ...


async def prefetched(pages: AsyncIterator[list[tuple[Any, ...]]]) -> AsyncIterator[list[tuple[Any, ...]]]:
    """The pages, the next one already being read (on the store's thread or socket) while
    this one is checked: reading and checking overlap instead of taking turns."""
    it = pages.__aiter__()
    nxt: asyncio.Future[list[tuple[Any, ...]]] = asyncio.ensure_future(it.__anext__())
    try:
        while True:
            try:
                page = await nxt
            except StopAsyncIteration:
                return
            nxt = asyncio.ensure_future(it.__anext__())
            yield page
    finally:
        if not nxt.done():
            nxt.cancel()


def head_problem(last: Head | None, head: Head | None, has_heads: bool) -> tuple[int, str] | None:
    """Where and how the chain's end disagrees with its head row (the registry's record)."""
    end = last.seq if last else 0
    if head is None:
        if not has_heads:
            return None
        return end, "no head row: the chain is not in the registry (forged, or its head row was deleted)"
    if end < head.seq:
        return end + 1, f"deleted: the chain ends at seq {end} but its head is seq {head.seq}"
    if end > head.seq:
        return (
            head.seq + 1,
            f"appended past head: events seq {head.seq + 1}..{end} are beyond the recorded head",
        )
    if last is not None and last.hash != head.hash:
        return end, "edited: the last event's hash is not the head's"
    return None


async def recheck_head(source: HeadSource, shard: str, last: Head | None) -> tuple[int, str] | None:
    """The chain's end against its head row read again, after the walk: on a live store a
    commit between reading the heads and walking the chain moves both (one transaction), so
    the first read can be behind the rows walked. A head now ahead of the walk is fine if its
    event is there with its hash (the chain grew after we walked it); anything else stands."""
    head = (await source.heads(0.0)).get(shard)
    if head is not None and last is not None and head.seq > last.seq:
        if await source.hash_at(shard, head.seq) == head.hash:
            return None
    return head_problem(last, head, True)
