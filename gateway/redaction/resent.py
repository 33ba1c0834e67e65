"""A request's texts already analysed, in one pass: key, cache hit, summary, replacement.

Agents resend the whole conversation on every call: of case b (a 2 KB message on a 40 KB
conversation), the 20 resent texts went through five loops (the views, ``analyze_many``'s keys
and lookups, its results mapped to the source, ``_apply_request``'s summary, ``replace_texts``),
and a request whose every text was a hit still set up the analysis (its budget pre-check,
slices, result lists) and the replacement loop. Here each text of the request's leading run of plain cache hits is
hashed, looked up, counted in the summary and written with its placeholders in one step; the
texts from the first one that is not (new, seen through a view: JSON source, a URL, a labelled
value; a JSON document with a bare number; a type that is not a placeholder: ``allow``,
``mask``, ``hash``, ``block``; more values than one chunk) go the general way, in order, so
placeholders are numbered in reading order as before.

What is reused is what the analysis cache holds (offsets and types under the text's SHA-256,
never a value, never a redacted text); the placeholders are written into the vault of this
call, which dies with it. The work budget is charged what ``analyze_many`` charges a hit (its
values at their share), and the loop is handed back between texts once a slice ran.

Measured with callgrind in process (``redact_in`` and ``redact_out`` of a cached 2 KB answer):
20 resent 2 KB texts and a cached line 2,725k -> 2,638k instructions a call, a one-line cached
prompt 448k -> 410k. Most of what is left per resent text is its SHA-256 (~40 us for 40 KB on
this machine, with SHA-NI; valgrind's runs without it) and the writing itself.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Mapping
from hashlib import sha256

from gateway.redaction.anonymize import REPLACE_CHUNK
from gateway.redaction.budget import LoopSlice, WorkBudget
from gateway.redaction.engine import RedactionEngine
from gateway.redaction.locations import Slot
from gateway.redaction.replace import _JSON_HEADS, as_json
from gateway.redaction.spans import Spans
from gateway.redaction.state import RedactionState, Summary

_ENTITY = operator.attrgetter("entity")
_RANGE_ENTITY = operator.attrgetter("start", "end", "entity")
#: Up to this many values a text is written by ``Vault.write_few`` (a message of a
#: conversation), past it by ``write_placeholders`` (a list of contacts).
_FEW = 8


async def replace_seen(
    slots: list[Slot],
    engine: RedactionEngine,
    state: RedactionState,
    summary: Summary,
    budget: WorkBudget,
    loop_slice: LoopSlice,
    changed_paths: list[str],
) -> int:
    """Summarise and replace the leading slots whose texts are plain cache hits (see the
    module's doc); returns how many were done. ``changed_paths`` gets the paths changed."""
    placeholders = state.actions.placeholders
    contains = placeholders.__contains__
    write = state.vault.write_placeholders
    write_few = state.vault.write_few
    originals = state.originals
    seen = engine.cache.seen
    limit = engine.settings.max_text_chars
    clock = time.perf_counter
    #: The same text twice (its key seen before in this request): the vault gives its values
    #: the same placeholders, so it becomes the same text; charged and written once.
    done: dict[bytes, tuple[Spans, str]] = {}
    counted: dict[int, Mapping[str, int]] = {}
    # Written out (no Python call per text it can avoid): every text of a resent conversation
    # passes here on every call.
    for n, slot in enumerate(slots):
        if type(slot) is not Slot or slot.json or slot.url or slot.label:
            return n  # read through a view (or a number): the general path
        text = slot.text
        if not text:
            continue
        if len(text) > limit:
            engine.check_size(text)
        if n and clock() >= loop_slice.due:
            await loop_slice.pause()
        key = sha256(text.encode("utf-8", "surrogatepass")).digest()
        prev = done.get(key)
        if prev is not None:
            spans, changed = prev
            if not spans:
                continue
        else:
            found = seen(key)
            if found is None:
                return n  # new: analysed with the rest
            spans = found
            if not spans:
                done[key] = (spans, text)
                continue
            if (
                len(spans) > REPLACE_CHUNK
                or not all(map(contains, map(_ENTITY, spans)))
                or (text.lstrip()[:1] in _JSON_HEADS and as_json(slot, text, spans))
            ):
                return n  # replaced in chunks, by its actions, or JSON-aware: the general path
            budget.cached(len(spans))
            if len(spans) <= _FEW:
                changed = write_few(text, spans, placeholders)
            else:
                out: list[str] = []
                pos = write(text, list(map(_RANGE_ENTITY, spans)), placeholders, out, 0)
                out.append(text[pos:])
                changed = "".join(out)
            done[key] = (spans, changed)
        summary.add_text(slot.path, spans, counted)
        if changed != text:
            slot.set(changed)
            originals.append((slot, text))
            changed_paths.append(slot.path)
    return len(slots)
