"""Which text fields redaction covers, in both directions: the one table (rendered in the README).

Every string of a request or an answer is looked up here by its *shape path*: keys joined by
``.``, ``[]`` for a list element (``messages[].content[].text``). The first rule whose pattern
matches decides (``**`` matches any keys in between, a trailing ``/**`` also covers everything
below). A string no rule knows gets ``redaction.unknown_fields`` (default ``scan``), so a
field a provider adds tomorrow is scanned, not a silent bypass.

Treatments:

* ``scan``: redacted (request) or redacted then restored (answer);
* ``json``: JSON source (tool-call arguments): analysed decoded, a number token becomes a
  string placeholder so the result parses wherever the input parsed;
* ``tool``: like ``json``, in the tool calls the model writes: only the types whose
  ``tool_arguments`` is on are restored into it;
* ``url``: userinfo, path, query and fragment scanned, percent-decoded, with the delimiters as
  spaces; the host kept (a redacted host would only break the fetch); ``data:`` is opaque. A
  ``url`` / ``*_url`` key inside an ``any`` subtree is a URL too;
* ``any``: free-form JSON (schemas, metadata, tool parameters): every string value below it;
* ``logprobs``: token lists of the text beside them: dropped when redaction changed that text
  (their tokens would spell the raw value) and, in answers, unless ``logprob_check`` vouches for
  them (tokens spell the text, no alternative has a finding);
* ``opaque``: not text (base64 images, audio and files, encrypted reasoning, token ids): passed
  and counted as ``unscanned``, or refused with ``redaction.opaque_fields: refuse``;
* ``keep``: structure (ids, types, roles, model and tool names, enums): passed as is
  (``struct``: the same for a key anywhere, ``**.id``, which does not stop the walk below it).

The completeness test walks the ``openai`` SDK's own request and response types and fails
on any string field this table does not name.
"""

from __future__ import annotations

import re
from typing import Any

from gateway.redaction.field_rows import SECTIONS, STRUCTURE, TABLES
from gateway.redaction.treatments import MEANING, SUBTREE, Treat

__all__ = ["MEANING", "SUBTREE", "TABLES", "Table", "Treat", "render_markdown"]


def _regex(pattern: str) -> str:
    subtree = pattern.endswith("/**")
    if subtree:
        pattern = pattern[:-3]
    out = []
    if pattern.startswith("**."):
        out.append(r"(?:.*\.)?")
        pattern = pattern[3:]
    out.append(re.escape(pattern))
    if subtree:
        out.append(r"(?:[.\[].*)?")
    return "".join(out)


#: "Not memoised yet". Typed ``Any`` so a ``memo.get(path, _MISS)`` keeps the memo's value type.
_MISS: Any = object()


class Table:
    """One direction of one endpoint, compiled: shape path -> treatment, memoised."""

    __slots__ = ("_kids", "_regex", "_rules", "memo", "rules")

    _MEMO_MAX = 4096

    def __init__(self, rules: list[tuple[str, Treat]]) -> None:
        self.rules = [*rules, *STRUCTURE]
        self._rules = [t for _, t in self.rules]
        alternatives = "|".join(f"(?P<r{i}>{_regex(p)})" for i, (p, _) in enumerate(self.rules))
        self._regex = re.compile(alternatives, re.S)
        self.memo: dict[str, Treat | None] = {}
        self._kids: dict[str, dict[Any, Treat | None]] = {}

    def kids(self, shape: str) -> dict[Any, Treat | None]:
        """key -> treatment of the string fields of the object at ``shape`` (memoised; the
        walker fills it). Cleared with the memo, so invented keys cannot grow it forever."""
        kids = self._kids.get(shape)
        if kids is None:
            if len(self._kids) >= self._MEMO_MAX:
                self._kids.clear()
            kids = self._kids[shape] = {}
        elif len(kids) >= self._MEMO_MAX:
            kids.clear()
        return kids

    def lookup(self, path: str) -> Treat | None:
        """The treatment of ``path``, or None when no rule names it."""
        treat = self.memo.get(path, _MISS)
        if treat is not _MISS:
            return treat
        m = self._regex.fullmatch(path)
        treat = self._rules[int(m.lastgroup[1:])] if m is not None and m.lastgroup else None
        if len(self.memo) >= self._MEMO_MAX:  # shapes are finite; keys a client invents are not
            self.memo.clear()
        self.memo[path] = treat
        return treat


def render_markdown() -> str:
    """The README's field table, from the rules above (a test keeps the README in sync)."""
    lines = ["| where | field | treatment |", "|---|---|---|"]
    for where, rules in SECTIONS:
        for pattern, treat in rules:
            shown = "see `<item>` rows" if pattern.endswith(".<item>") else MEANING[treat]
            shown = "see `<tool>` rows" if pattern.endswith(".<tool>") else shown
            lines.append(f"| {where} | `{pattern}` | {shown} |")
    keys = ", ".join(f"`{p[3:]}`" for p, _ in STRUCTURE)
    lines.append(f"| anywhere, unless a row above names it | {keys} | {MEANING[Treat.KEEP]} |")
    lines.append("| anywhere | any other string | `unknown_fields` (default: scanned) |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render_markdown())
