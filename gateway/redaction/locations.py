"""Where the text is in request and response bodies of the three endpoints.

The walk visits every value of the body and asks the field table (``fields.py``) what each
string is; it yields ``Slot``s: one string, where it is (``messages[3].content[0].text``, the
path the ``pii`` summary reports), whether it is JSON source (tool-call arguments, whose
escapes matter when a span is replaced) and whether it is a tool call the model writes. A
string the table does not know gets ``unknown_fields`` (default: scanned). Opaque values
(base64 images, audio, files, encrypted reasoning, token ids) are counted as unscanned.
Nothing recurses, so no nesting depth can exhaust the stack.
"""

from __future__ import annotations

from typing import Any

from gateway.call import Endpoint
from gateway.redaction.fields import _MISS, TABLES, Table, Treat
from gateway.redaction.logprob_check import Finds, holder_ok
from gateway.redaction.slots import NumberSlot, Slot, Walk, _number

#: Below this depth the shape path stops growing: everything deeper is "unknown" (scanned).
_MAX_SHAPE_DEPTH = 48


#: The compiled tables, built on first use (``warm_tables`` at startup) from the rules in
#: fields.py: constants in effect (their memo is a bounded cache of a pure function of the
#: shape path, the same for every request).
_TABLES: dict[tuple[str, str], Table] = {}


def table(endpoint: Endpoint | str, direction: str) -> Table:
    key = (str(endpoint), direction)
    t = _TABLES.get(key)
    if t is None:
        t = _TABLES[key] = Table(TABLES.get(key, []))
    return t


def warm_tables() -> None:
    """Compile every table (~50 ms of regex compilation) before the first request needs one."""
    for endpoint, direction in TABLES:
        table(endpoint, direction)


def _string(walk: Walk, treat: Treat | None, unknown: Treat, path: str, holder: Any, key: Any) -> None:
    value = holder[key]
    label = None
    if treat is None:
        if unknown is not Treat.SCAN:
            walk.unscanned += 1
            walk.unknown.append(path)
            return
        treat = Treat.SCAN
        label = key if walk.numbers and isinstance(key, str) else None
    elif treat is Treat.ANY and walk.numbers and isinstance(key, str):
        label = key
    if treat is Treat.SCAN or treat is Treat.ANY or treat is Treat.PAD:  # PAD: rewriters repad first
        walk.slots.append(Slot(path, holder, key, label=label))
    elif treat is Treat.JSON:
        walk.slots.append(Slot(path, holder, key, json=True))
    elif treat is Treat.TOOL:
        walk.slots.append(Slot(path, holder, key, json=key == "arguments", tool=True))
    elif treat is Treat.URL:
        if value.startswith("data:"):
            walk.unscanned += 1
            walk.opaque.append(path)
        else:
            walk.slots.append(Slot(path, holder, key, url=True))
    elif treat is Treat.OPAQUE:
        walk.unscanned += 1
        walk.opaque.append(path)


def every_string(walk: Walk, value: Any, path: str) -> None:
    """``any``: every string value below (keys untouched), iteratively, in document order; a
    ``url`` / ``*_url`` value is scanned as a URL (decoded, host kept, ``data:`` opaque)."""
    numbers = walk.numbers
    # (node, key or None for a container, path, the nearest member name: a request's label)
    stack: list[tuple[Any, Any, str, Any]] = [(value, None, path, None)]
    while stack:
        node, key, p, label = stack.pop()
        if key is not None:
            if isinstance(key, str) and (key == "url" or key.endswith("_url")):
                _string(walk, Treat.URL, Treat.SCAN, p, node, key)  # a URL in free-form JSON
            elif not numbers:
                walk.slots.append(Slot(p, node, key))
            elif isinstance(node[key], str):
                walk.slots.append(Slot(p, node, key, label=label))
            else:
                walk.slots.append(NumberSlot(p, node, key, label=label, number=node[key]))
            continue
        if isinstance(node, dict):
            walk.spend(len(node))
            items = [(k, f"{p}.{k}") for k in node]
        elif isinstance(node, list):
            walk.spend(len(node))
            items = [(i, f"{p}[{i}]") for i in range(len(node))]
        else:
            continue
        for k, child_path in reversed(items):
            child = node[k]
            name = k if isinstance(k, str) else label
            if isinstance(child, str) or (numbers and _number(child)):
                stack.append((node, k, child_path, name))
            elif isinstance(child, (dict, list)):
                stack.append((child, None, child_path, name))


def _join(parent: str, key: Any) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


_ANY, _LOGPROBS, _OPAQUE, _KEEP = Treat.ANY, Treat.LOGPROBS, Treat.OPAQUE, Treat.KEEP
#: Numbers in an object's leading fields that need nothing are skipped where they are found
#: (False: every one goes through the stack; a test walks both ways and compares).
_INLINE_NUMBERS = True
#: Lists of flat objects of strings are walked by ``_flat_objects`` (False: through the stack).
_INLINE_LISTS = True
_SCAN, _STRUCT = Treat.SCAN, Treat.STRUCT


def walk_body(
    t: Table,
    body: Any,
    unknown: Treat = Treat.SCAN,
    *,
    shape: str = "",
    path: str = "",
    max_values: int | None = None,
    numbers: bool = False,
) -> Walk:
    """Every string of ``body``, treated as the table says (document order). ``shape`` and
    ``path`` place an object found deeper (an output item in a stream event). ``max_values``:
    refuse (400 ``content_too_complex``) a body with more members and elements than that.

    Hot path (every request walks the whole conversation): paths are built only for
    containers and slots, the table lookup is memoised, and treatments are compared by
    identity (an enum in a set would hash through Python code on every node)."""
    walk = Walk([], left=max_values, numbers=numbers)
    if not isinstance(body, dict):
        return walk
    walk.spend(len(body))
    spend = walk.spend
    lookup = t.lookup
    memo = t.memo
    miss = _MISS
    slots = walk.slots
    sp = f"{shape}." if shape else ""
    # (holder, key, shape, path of the holder, depth); the root's children first, in order.
    stack: list[tuple[Any, Any, str, str, int]] = [
        (body, k, f"{sp}{k}", path, 1) for k in reversed(list(body))
    ]
    pop, push = stack.pop, stack.append
    last_opaque: Any = None
    #: shape -> ``t.kids(shape)``: a conversation's messages share a handful of shapes (one
    #: walk may grow a memo past its bound by the keys of its own body; the next one clears it).
    kids_of: dict[str, dict[Any, Treat | None]] = {}
    inline_numbers = _INLINE_NUMBERS
    while stack:
        holder, key, shape, parent, depth = pop()
        value = holder[key]
        treat = memo.get(shape, miss)
        if treat is miss:
            treat = lookup(shape)
        if type(value) is str:
            if treat is _SCAN:
                slots.append(Slot(_join(parent, key), holder, key))
            elif treat is _LOGPROBS:  # a string where logprobs belong: not judged, dropped
                walk.logprobs.append((holder, key, parent))
            elif treat is not _STRUCT and treat is not _KEEP:
                _string(walk, treat, unknown, _join(parent, key), holder, key)
            continue
        if value is None or value is True or value is False:
            continue
        if treat is _ANY or treat is _LOGPROBS or treat is _OPAQUE or treat is _KEEP:
            if treat is _ANY:
                if numbers and _number(value):
                    label = key if isinstance(key, str) else None
                    slots.append(NumberSlot(_join(parent, key), holder, key, label=label, number=value))
                else:
                    every_string(walk, value, _join(parent, key))
            elif treat is _LOGPROBS:
                walk.logprobs.append((holder, key, parent))
            elif treat is _OPAQUE and (isinstance(value, (dict, list)) or holder is not last_opaque):
                last_opaque = holder  # a list of token ids counts once
                walk.unscanned += 1
                walk.opaque.append(_join(parent, key))
            continue
        vt = type(value)
        if vt is dict or vt is list or isinstance(value, (dict, list)):
            # ``_join`` written out: once per message of the conversation.
            if type(key) is int:
                here = f"{parent}[{key}]"
            else:
                here = _join(parent, key)
            depth += 1
            if isinstance(value, dict):
                deep = depth > _MAX_SHAPE_DEPTH
                keys = list(value)
                spend(len(keys))
                # Leading string fields ({"role", "content"}: most messages) are handled here
                # in order; from the first other value on, the rest goes on the stack.
                kids = kids_of.get(shape)
                if kids is None:
                    kids = kids_of[shape] = t.kids(shape)
                for n, k in enumerate(keys):
                    child = value[k]
                    if type(child) is not str:
                        if child is None or child is True or child is False:
                            continue
                        ct_of = type(child)
                        if (ct_of is int or ct_of is float) and not deep and inline_numbers:
                            # A number the stack path would do nothing with (a field no rule
                            # names, structure or keep, and not a long integer of a request):
                            # skipped here, not pushed and popped (an answer's ``index``,
                            # ``created``, ``usage``; a request's ``max_tokens``).
                            ct = kids.get(k, miss)
                            if ct is miss:
                                ct = kids[k] = lookup(f"{shape}.{k}")
                            if (
                                ct is _STRUCT
                                or ct is _KEEP
                                or (ct is None and not (numbers and _number(child)))
                            ):
                                continue
                        for k2 in reversed(keys[n:]):
                            push((value, k2, "…" if deep else f"{shape}.{k2}", here, depth))
                        break
                    if deep:
                        ct = lookup("…")
                    else:
                        ct = kids.get(k, miss)
                        if ct is miss:
                            ct = kids[k] = lookup(f"{shape}.{k}")
                    if ct is _SCAN:
                        slots.append(Slot(f"{here}.{k}" if here else k, value, k))
                    elif ct is not _STRUCT and ct is not _KEEP:
                        _string(walk, ct, unknown, f"{here}.{k}" if here else k, value, k)
            else:
                child_shape = f"{shape}[]" if depth <= _MAX_SHAPE_DEPTH else "…"
                spend(len(value))
                if not (
                    _INLINE_LISTS
                    and depth < _MAX_SHAPE_DEPTH
                    and _flat_objects(t, value, child_shape, here, kids_of, walk)
                ):
                    for i in range(len(value) - 1, -1, -1):
                        push((value, i, child_shape, here, depth))
        elif treat is None and numbers and _number(value):  # in a field no rule knows
            label = key if isinstance(key, str) else None
            slots.append(NumberSlot(_join(parent, key), holder, key, label=label, number=value))
        elif treat is _SCAN or treat is Treat.JSON or treat is Treat.TOOL or treat is Treat.URL:
            walk.unscanned += 1  # a number where text belongs: nothing to scan, the upstream judges
    return walk


def _flat_objects(
    t: Table, items: list[Any], shape: str, here: str, kids_of: dict[str, dict[Any, Treat | None]], walk: Walk
) -> bool:
    """A list whose every item is an object of strings the table scans or passes (a chat's
    messages, a message's text parts): its slots, in order, without a stack entry per item and
    per member (~2.5 us a message of a resent conversation). False, with nothing done, for any
    other list: ``walk_body`` walks it (a test walks both ways and compares)."""
    treat = t.memo.get(shape, _MISS)
    if treat is _MISS:
        treat = t.lookup(shape)
    if treat is _ANY or treat is _LOGPROBS or treat is _OPAQUE or treat is _KEEP:
        return False
    kids = kids_of.get(shape)
    if kids is None:
        kids = kids_of[shape] = t.kids(shape)
    made: list[Slot] = []
    members = 0
    for i, item in enumerate(items):
        if type(item) is not dict:
            return False
        members += len(item)
        for k, child in item.items():
            if type(child) is not str:
                if child is None or child is True or child is False:
                    continue
                return False
            ct = kids.get(k, _MISS)
            if ct is _MISS:
                ct = kids[k] = t.lookup(f"{shape}.{k}")
            if ct is _SCAN:
                made.append(Slot(f"{here}[{i}].{k}", item, k))
            elif ct is not _STRUCT and ct is not _KEEP:
                return False
    walk.spend(members)
    walk.slots.extend(made)
    return True


def request_slots(
    endpoint: Endpoint, body: dict[str, Any], unknown: Treat = Treat.SCAN, max_values: int | None = None
) -> Walk:
    return walk_body(table(endpoint, "request"), body, unknown, max_values=max_values, numbers=True)


def response_slots(endpoint: Endpoint, body: Any, unknown: Treat = Treat.SCAN) -> Walk:
    return walk_body(table(endpoint, "answer"), body, unknown)


def drop_logprobs(walk: Walk, changed_paths: list[str], finds: Finds | None = None) -> bool:
    """Logprobs beside a text that redaction changed spell the raw value: drop them (``[]``
    where the type wants a list, else ``null``). With ``finds`` (answers), also those
    ``logprob_check`` cannot vouch for: tokens that do not spell the text beside them, or an
    alternative with a finding. True if any was dropped."""
    dropped = False
    for holder, key, group in walk.logprobs:
        prefix = group + "."
        value = holder[key]
        if value and (
            any(p.startswith(prefix) for p in changed_paths)
            or (finds is not None and not holder_ok(holder, value, finds))
        ):
            holder[key] = [] if isinstance(value, list) else None
            dropped = True
    return dropped
