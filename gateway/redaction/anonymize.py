"""Applying actions to a text's spans through the request's vault, in steps a ``LoopSlice`` can
pause between: the generic replacement (every action, JSON source cut to its strings), which
``Redactor.apply_steps`` drives for answers, streams and request texts the one-loop paths
(``Vault.write_placeholders``, ``Vault.write_few``) do not take.
"""

from __future__ import annotations

import operator
from collections.abc import Generator, Mapping
from typing import Any

from gateway.redaction.config import Action
from gateway.redaction.jsonview import JsonPieces
from gateway.redaction.vault import Vault, VaultOperator

_ENTITY = operator.itemgetter(2)

#: Spans replaced between two chances to hand the event loop back (``anonymize_steps``):
#: 500 placeholders are ~0.15-0.25 ms; a text of 2,000 values was one ~1 ms stretch.
REPLACE_CHUNK = 500

Steps = Generator[None, None, str]


def finish(steps: Steps) -> str:
    """Run ``anonymize_steps`` to the end without pausing."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


def anonymize(
    text: str,
    spans: list[tuple[int, int, str]],
    actions: Mapping[str, Action],
    vault: Vault,
    *,
    json: bool,
    restorable: bool,
    operator: VaultOperator | None = None,
    pieces: JsonPieces | None = None,
) -> str:
    """``anonymize_steps`` in one go (streams and answers: their texts are bounded pieces)."""
    return finish(
        anonymize_steps(
            text, spans, actions, vault, json=json, restorable=restorable, operator=operator, pieces=pieces
        )
    )


def anonymize_steps(
    text: str,
    spans: list[tuple[int, int, str]],
    actions: Mapping[str, Action],
    vault: Vault,
    *,
    json: bool,
    restorable: bool,
    operator: VaultOperator | None = None,
    pieces: JsonPieces | None = None,
    chunk: int = REPLACE_CHUNK,
) -> Steps:
    """Replace disjoint, sorted ``spans`` of ``text`` through the vault operator.

    The operator is applied directly, left to right, rather than through Presidio's
    ``AnonymizerEngine``: that engine resolves conflicts between overlapping results (ours are
    already disjoint), builds result objects and validates the operator for every entity,
    ~130 us per call with two entities, which made re-redacting a resent 40 KB conversation
    cost more than analysing its new message. Left to right also numbers placeholders in
    reading order, which a stream (that sees the text left to right) reproduces exactly.

    In JSON source (``json``), spans are first cut to where the strings are (``pieces`` carries
    the lexer state of a stream): a number token becomes a string placeholder, and quotes and
    structure are never replaced, so the result parses wherever the input parsed.

    A generator: it yields after every ``chunk`` spans (and after cutting JSON into pieces),
    so a request's redaction can hand the event loop back there (``LoopSlice.run``); the
    result, the generator's return value, is the same whatever the chunk.
    """
    if not spans:
        return text
    op = operator or VaultOperator()
    if json:
        # A stream's lexer reads its segment to the end; a one-off one stops after the last span.
        cut = (
            pieces.split(text, spans) if pieces is not None else JsonPieces().split(text, spans, whole=False)
        )
        yield
        return (yield from _anonymize_json(text, cut, actions, vault, restorable, op, chunk))
    params: dict[str, dict[str, Any]] = {}  # one per entity type, as Presidio passes them
    out: list[str] = []
    pos = 0
    #: Our own operator writing a placeholder (every action but mask and hash) is
    #: ``vault.placeholder``, called here directly: a CSV of 2,500 contacts spent ~5 ms in the
    #: operator's three calls and parameter dicts, ~2 us a value.
    direct = type(op) is VaultOperator
    #: entity -> None (the operator writes it) or whether its placeholder is restorable.
    as_placeholder: dict[str, bool | None] = {}
    if direct:
        for entity in set(map(_ENTITY, spans)):  # a C loop: a dense text has thousands
            action = actions[entity]
            as_placeholder[entity] = (
                None
                if action is Action.MASK or action is Action.HASH
                else restorable and action is Action.RESTORE
            )
        if None not in as_placeholder.values():
            keep: dict[str, bool] = as_placeholder  # type: ignore[assignment]
            for i in range(0, len(spans), chunk):
                if i:
                    yield
                pos = vault.write_placeholders(text, spans[i : i + chunk], keep, out, pos)
            out.append(text[pos:])
            return "".join(out)
    for i, (start, end, entity) in enumerate(spans):
        if i and not i % chunk:
            yield
        if direct:
            if entity not in as_placeholder:
                action = actions[entity]
                as_placeholder[entity] = (
                    None
                    if action is Action.MASK or action is Action.HASH
                    else restorable and action is Action.RESTORE
                )
            if as_placeholder[entity] is not None:
                out.append(text[pos:start])
                out.append(vault.placeholder(entity, text[start:end], bool(as_placeholder[entity])))
                pos = end
                continue
        p = params.get(entity)
        if p is None:
            p = params[entity] = {
                "vault": vault,
                "entity_type": entity,
                "action": actions[entity],
                "json": False,
                "restorable": restorable,
            }
        out.append(text[pos:start])
        out.append(op.operate(text[start:end], p))
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _anonymize_json(
    text: str,
    pieces: list[tuple[int, int, str, bool]],
    actions: Mapping[str, Action],
    vault: Vault,
    restorable: bool,
    op: VaultOperator,
    chunk: int,
) -> Steps:
    """``anonymize`` on JSON source, over the pieces ``JsonPieces.split`` cut (numbers flagged)."""
    params: dict[tuple[str, bool], dict[str, Any]] = {}
    out: list[str] = []
    pos = 0
    for i, (start, end, entity, number) in enumerate(pieces):
        if i and not i % chunk:
            yield
        p = params.get((entity, number))
        if p is None:
            p = params[(entity, number)] = {
                "vault": vault,
                "entity_type": entity,
                "action": actions[entity],
                "json": True,
                "restorable": restorable,
                "number": number,
            }
        out.append(text[pos:start])
        out.append(op.operate(text[start:end], p))
        pos = end
    out.append(text[pos:])
    return "".join(out)
