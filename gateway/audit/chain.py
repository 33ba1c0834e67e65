"""One hash chain per shard: each process appends to its own chain.

A shard is ``<instance>.<boot>``: the instance name (``audit.shard_id`` or the host name)
plus a per-process boot suffix. Replicas and uvicorn workers therefore never contend for one
chain head, and a restarted process starts a fresh chain instead of guessing where a crashed
predecessor stopped. Chains are tied together by witnesses: the first event of every chain
(``chain_open``) and every periodic ``checkpoint`` record the current heads of the other
chains, so deleting a whole chain or the tail of one is caught by ``verify`` as soon as any
later event witnessed it.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from gateway.audit.schema import GENESIS_HASH, canonical_json, chain_hash, row_of


def new_shard_id(instance: str | None = None) -> str:
    base = (instance or socket.gethostname() or "wardgate").replace(" ", "_")
    return f"{base}.{int(time.time()):x}{os.getpid():x}{os.urandom(3).hex()}"


def instance_of(shard: str) -> str:
    """The instance part of a shard name (what ``new_shard_id`` was given)."""
    return shard.rsplit(".", 1)[0]


@dataclass(slots=True, frozen=True)
class Head:
    seq: int  # seq of the last event (0 = empty chain)
    hash: str


@dataclass(slots=True)
class SealedBatch:
    rows: list[tuple[Any, ...]]
    head: Head


class ShardChain:
    """Seals events in commit order; the head advances only once a batch is durable."""

    def __init__(self, shard: str, head: Head | None = None) -> None:
        self.shard = shard
        self.head = head or Head(0, GENESIS_HASH)

    def seal(self, events: list[dict[str, Any]]) -> SealedBatch:
        """Fill in shard/seq/prev_hash and hash each event, continuing from the head."""
        seq, prev = self.head.seq, self.head.hash
        rows = []
        for ev in events:
            seq += 1
            ev["shard"] = self.shard
            ev["seq"] = seq
            ev["prev_hash"] = prev
            ev.pop("hash", None)
            body = canonical_json(ev)
            prev = chain_hash(body, prev)
            rows.append(row_of(ev, body, prev))
        return SealedBatch(rows, Head(seq, prev))

    def advance(self, head: Head) -> None:
        self.head = head
