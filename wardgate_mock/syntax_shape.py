"""The parse tree shaped as the stdlib's parser shapes it, so the mock's answers stay the same.

``re``'s parser rewrites a few constructs while it reads them: a ``(?:...)`` group without
flags is just its items; alternatives that all begin with the same flat item share it as a
prefix; alternatives of one character each become a set; ``[a]`` is the literal ``a`` and
``[^a]`` "not ``a``". None of this changes what a pattern matches, but the example strings
``wardgate_mock.pattern`` builds follow the tree's shape, so ``syntax.py`` applies the same
rewrites (checked tree for tree against the stdlib's parser by the tests).
"""

from __future__ import annotations

from typing import Any

Item = tuple[str, Any]

#: Items the stdlib keeps nested objects in: they compare by identity there, so they are
#: never a shared prefix.
_NESTED = frozenset({"MAX_REPEAT", "MIN_REPEAT", "SUBPATTERN", "BRANCH"})


def plain_group(item: Item) -> list[Item] | None:
    """The items of a ``(?:...)`` group without flags (None for anything else)."""
    if item[0] == "SUBPATTERN":
        group, add, remove, items = item[1]
        if group is None and not add and not remove:
            return list(items)
    return None


def _uniq(items: list[Item]) -> list[Item]:
    return list(dict.fromkeys(items))


def shape_branch(branches: list[list[Item]]) -> list[Item]:
    """Alternatives, shaped as the stdlib shapes them (so examples come out the same): a prefix
    all of them share moves in front, and alternatives of one character become a set."""
    out: list[Item] = []
    while (
        all(branches) and branches[0][0][0] not in _NESTED and all(b[0] == branches[0][0] for b in branches)
    ):
        out.append(branches[0][0])
        branches = [b[1:] for b in branches]
    members: list[Item] = []
    for branch in branches:
        if len(branch) != 1:
            break
        op, arg = branch[0]
        if op == "LITERAL":
            members.append(branch[0])
        elif op == "IN" and arg[0][0] != "NEGATE":
            members.extend(arg)
        else:
            break
    else:
        return [*out, ("IN", _uniq(members))]
    return [*out, ("BRANCH", (None, branches))]


def shape_set(items: list[Item]) -> Item:
    """A class, shaped as the stdlib shapes it: ``[a]`` is a literal, ``[^a]`` not that literal."""
    negate = bool(items) and items[0][0] == "NEGATE"
    members = _uniq(items[1:] if negate else items)
    if len(members) == 1 and members[0][0] == "LITERAL":
        return ("NOT_LITERAL", members[0][1]) if negate else members[0]
    return ("IN", [("NEGATE", None), *members] if negate else members)
