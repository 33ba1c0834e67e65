"""Writing a request's analysed texts back with their values replaced (``redact_in``'s last step).

Agents resend the whole conversation on every call. Its texts are analysis cache hits
(offsets and types, never values), but each still has to be replaced, since the vault (the
placeholders and the values to restore) lives only as long as one call. Through the generic
path (``Redactor.apply_steps``: the ``allow`` filter, per-type decisions, a generator driven
by the request's ``LoopSlice``) that cost ~13 us a message: ~0.3 ms for a 40 KB conversation
of 20 messages, more than analysing its new 2 KB message. A text that is not JSON source and
whose values all become placeholders (``redact`` / ``restore``, the defaults) is written here
in one ``Vault.write_placeholders`` loop: the loop the generic path ends in, with the same
vault, spans and order, so the text and the vault come out the same (tested against the
generic path). Nothing is cached across calls: the original text is in the request, the
spans come from the analysis cache, so no redacted text (which still holds whatever was not
detected) outlives the call.
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Generator

from gateway.redaction.anonymize import REPLACE_CHUNK
from gateway.redaction.budget import LoopSlice
from gateway.redaction.engine import Span, Spans
from gateway.redaction.jsonview import is_json, looks_like_json
from gateway.redaction.locations import Slot
from gateway.redaction.state import RedactionState

_ENTITY = operator.attrgetter("entity")
_RANGE_ENTITY = operator.attrgetter("start", "end", "entity")
_NUMBER_CHARS = frozenset("-+0123456789.eE")
#: What ``looks_like_json`` looks for first (an empty text is not in it).
_JSON_HEADS = frozenset("{[")

#: The generic replacement of one text (``Redactor.apply_steps`` on the prompt side):
#: (text, spans, json) -> steps whose return value is the new text.
Generic = Callable[[str, Spans, bool], Generator[None, None, str]]


def bare_number(text: str, span: Span) -> bool:
    """The span is made of number characters only (it may be a JSON number token)."""
    return all(c in _NUMBER_CHARS for c in text[span.start : span.end])


def as_json(slot: Slot, text: str, spans: Spans) -> bool:
    """Replace JSON-aware: JSON source, or a JSON document (a tool result) where a value is a
    bare number, which must become a string placeholder; only then is the document parsed."""
    return slot.json or (looks_like_json(text) and any(bare_number(text, s) for s in spans) and is_json(text))


async def replace_texts(
    slots: list[Slot], results: list[Spans], state: RedactionState, loop_slice: LoopSlice, generic: Generic
) -> list[str]:
    """Replace each slot's spans in place (``state.originals`` keeps the texts before, for a
    policy's re-run); returns the paths of the slots changed."""
    placeholders = state.actions.placeholders
    contains = placeholders.__contains__
    write = state.vault.write_placeholders
    originals = state.originals
    changed_paths: list[str] = []
    #: The same text twice in one request (ten identical messages of 1,999 phone numbers) is
    #: replaced once: the vault gives the same values the same placeholders, so the second
    #: result is the first. Keyed by the spans object (identical texts share one result of
    #: ``analyze_many``; a text seen through another view, a URL, does not) and checked
    #: against the text itself (a compare, not a hash of every text).
    done: dict[tuple[int, bool], tuple[str, str]] = {}
    # No pause after the last text replaced: nothing of this request's redaction is left to
    # run behind it (the stage returns; the forward awaits I/O), so the loop turn it could
    # cost (~2-3 per call otherwise, 10-20 us each) buys other clients nothing.
    last = len(results) - 1
    while last >= 0 and not results[last]:
        last -= 1
    clock = time.perf_counter
    # A resent conversation passes here on every call: the loop body makes no Python call
    # per text it can avoid (``as_json`` only for a text that starts like JSON, the slice's
    # clock compared here, ``LoopSlice.pause`` awaited only when due).
    for n, (slot, spans) in enumerate(zip(slots, results, strict=True)):
        if not spans:
            continue
        original = slot.text
        json = slot.json or (original.lstrip()[:1] in _JSON_HEADS and as_json(slot, original, spans))
        key = (id(spans), json)
        prev = done.get(key)
        if prev is not None and prev[0] == original:
            changed = prev[1]
        else:
            if not json and len(spans) <= REPLACE_CHUNK and all(map(contains, map(_ENTITY, spans))):
                out: list[str] = []
                pos = write(original, list(map(_RANGE_ENTITY, spans)), placeholders, out, 0)
                out.append(original[pos:])
                changed = "".join(out)
                if n != last and clock() >= loop_slice.due:
                    await loop_slice.pause()
            else:  # a text of thousands of values is replaced in chunks with pauses between
                changed = await loop_slice.run(generic(original, spans, json))
            done[key] = (original, changed)
        if changed != original:
            slot.set(changed)
            originals.append((slot, original))
            changed_paths.append(slot.path)
    return changed_paths
