"""A call's redaction data: the per-call state, its effective actions and the ``pii`` summary.

``RedactionState`` is kept in the redaction area's own slot of the call (``STATE``): the vault,
the effective actions, the originals for a re-run, the answer's stream channels and summary.
``Redactor`` (redactor.py) creates and fills it; only the redaction stages read it.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.callstate import Slot as CallSlot
from gateway.redaction.budget import WorkBudget
from gateway.redaction.config import Action
from gateway.redaction.locations import Slot
from gateway.redaction.spans import Spans
from gateway.redaction.stream import Channel
from gateway.redaction.vault import Vault

#: The call's redaction state (redaction only: ``redact_in``, ``redact_out``).
STATE: CallSlot[RedactionState] = CallSlot("redaction.state")
_ENTITY = operator.attrgetter("entity")


@dataclass
class Summary:
    """Entity types, counts and where; never a value. Shared with policy and audit."""

    entities: Counter[str] = field(default_factory=Counter)
    locations: list[dict[str, Any]] = field(default_factory=list)
    unscanned: int = 0

    def add(self, path: str, spans: Spans, counts: Mapping[str, int] | None = None) -> None:
        """``counts``: the spans' entity counts, when the caller has them already."""
        if counts is None:
            counts = Counter(map(_ENTITY, spans))  # C loop: a dense text has thousands of spans
        for entity in sorted(counts):
            n = counts[entity]
            self.entities[entity] += n
            self.locations.append({"path": path, "type": entity, "count": n})

    def add_text(self, path: str, spans: Spans, counted: dict[int, Mapping[str, int]]) -> None:
        """``add`` for a request's text; ``counted`` keeps the counts of a ``Spans`` object
        (identical texts share one) for the next text that has it."""
        if len(spans) == 1:  # one value (most messages that have any): no counts to build
            entity = spans[0].entity
            self.entities[entity] += 1
            self.locations.append({"path": path, "type": entity, "count": 1})
            return
        counts = counted.get(id(spans))
        if counts is None:
            counts = counted[id(spans)] = Counter(map(_ENTITY, spans))
        self.add(path, spans, counts)

    def as_dict(self) -> dict[str, Any]:
        return {
            "entities": dict(self.entities),
            "locations": list(self.locations),
            "unscanned": self.unscanned,
        }

    def request_pii(self, actions: Actions) -> dict[str, Any]:
        """The request's ``pii``: the summary and the action each type found gets, on the
        prompt and when the answer brings it (a policy or an auditor sees both)."""
        pii = self.as_dict()
        prompt = actions.prompt
        pii["actions"] = {e: str(prompt[e]) for e in self.entities if e in prompt}
        pii["answer_actions"] = {e: str(actions.answer[e]) for e in pii["actions"]}
        return pii


@dataclass(frozen=True, slots=True)
class Actions:
    """One call's effective actions: per type for the prompt and the answer, and the types
    whose values may be restored into tool-call arguments the model writes."""

    prompt: Mapping[str, Action]
    answer: Mapping[str, Action]
    tool_restore: frozenset[str]
    #: The prompt types whose values become a placeholder (``redact``, ``restore``), each with
    #: whether it is restorable: a request text holding only these is replaced in one loop
    #: (``Vault.write_placeholders``), the common case of a resent conversation.
    placeholders: Mapping[str, bool]


@dataclass
class RedactionState:
    vault: Vault
    actions: Actions
    #: (slot, text before redaction) of every slot changed, so a policy's ``redact`` can re-run.
    originals: list[tuple[Slot, str]] = field(default_factory=list)
    #: Stream channels of the answer (see events.py), keyed by where they are in the answer.
    channels: dict[str, Channel] = field(default_factory=dict)
    out_summary: Summary = field(default_factory=Summary)
    restored: int = 0
    #: The answer has been fully processed (summary and decision recorded).
    finished: bool = False
    #: What scanning the answer costs, across its texts, stream or not: recorded, never
    #: refused (the answer is paid for; see budget.py).
    answer_budget: WorkBudget | None = None

    def __repr__(self) -> str:
        return f"RedactionState({self.vault!r}, changed={len(self.originals)})"
