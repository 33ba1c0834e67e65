"""Placeholder names (``<PHONE_NUMBER_17>``) made once per process, not once per value.

A dense text (a contact list of 2,500 numbers, resent on every call of a conversation) writes
thousands of placeholders per call; formatting each name again, and hashing the new string as
the vault stores it, was ~30% of writing them (~1.3 -> ~0.9 ms). ``names(entity, upto)`` is a
list whose item ``n`` is ``<entity_n>``: the same string objects on every call. Only names are
kept (never a value, never which value a name stood for), at most ``CAP`` per type. A list is
never changed once made; a longer one replaces it whole, so a reader always sees a list that
is right as far as it goes.
"""

from __future__ import annotations

#: Names kept per type (~65 bytes each: ~270 KB for a type that reached it); beyond, the vault
#: formats the name as before.
CAP = 4096
_NAMES: dict[str, list[str]] = {}


def names(entity: str, upto: int) -> list[str]:
    """``<entity_0>`` (unused) to at least ``<entity_upto>``, or to ``<entity_CAP-1>``."""
    made = _NAMES.get(entity)
    if made is None or (len(made) <= upto and len(made) < CAP):
        size = min(CAP, max(upto + 1, 2 * len(made or ()), 64))
        made = _NAMES[entity] = [f"<{entity}_{n}>" for n in range(size)]
    return made
