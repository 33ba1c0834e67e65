"""The data model of ``MemoryStore``: one scope (a hash and two sorted logs, as in Redis) and
the helpers reading its lease members and lapse marks, shared by the store and its admin part.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.limits.sortedlog import SortedLog


@dataclass
class Scope:
    h: dict[str, Any] = field(default_factory=dict)
    leases: SortedLog = field(default_factory=SortedLog)
    window: SortedLog = field(default_factory=SortedLog)
    expires_ms: int = 0  # 0 = never


def weight(member: str) -> int:
    return int(member.rpartition("|")[2])


def marked(mark: tuple[int, int] | None) -> int:
    """What lapses of a reservation booked already, from its mark (see ``lua_common.marked``)."""
    return 0 if mark is None else mark[0]


def held_member(rid: str, est: int, booked: int) -> str:
    """The lease member of a reservation whose lapses booked ``booked`` already (``held_member``)."""
    return f"{rid}|{max(est - booked, 0)}"
