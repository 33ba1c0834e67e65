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

from dataclasses import dataclass, field
from typing import Any

from gateway.call import Endpoint
from gateway.redaction.budget import content_too_complex
from gateway.redaction.fields import _MISS, TABLES, Table, Treat
from gateway.redaction.jsonview import JsonView, LabelView, UrlView, url_view

#: Below this depth the shape path stops growing: everything deeper is "unknown" (scanned).
_MAX_SHAPE_DEPTH = 48


@dataclass(slots=True)
class Slot:
    path: str
    container: Any  # dict or list holding the string
    key: Any
    json: bool = False
    #: A tool call the model writes: only the types allowed there are restored into it.
    tool: bool = False
    #: A URL: detection runs on ``url_view`` (same offsets), see there.
    url: bool = False
    #: The member name of a value in free-form JSON (``metadata``, a schema, a field no rule
    #: knows): detection reads the value after it (``phone: 4155552671``), so a recognizer
    #: that needs a label finds it as it does in tool-call arguments, which are one JSON text.
    label: str | None = None

    @property
    def text(self) -> str:
        return self.container[self.key]

    def set(self, value: str) -> None:
        self.container[self.key] = value

    def view(self) -> JsonView | None:
        """What detection reads of a request's text, when not the text itself."""
        if self.json:
            return JsonView(self.text)
        if self.url:
            return UrlView(url_view(self.text))
        text = self.text
        if self.label and needs_label(self.label, text):
            return LabelView(self.label, text)
        return None


@dataclass(slots=True)
class NumberSlot(Slot):
    """An integer in a request's free-form JSON (``{"card": 4111111111111111}`` in metadata,
    a schema's ``default``/``enum``, a provider field no rule knows, which a provider may put
    in the prompt): scanned as its digits; a value found in it becomes its placeholder string."""

    number: int | float = 0

    @property
    def text(self) -> str:
        value = self.container[self.key]
        return value if isinstance(value, str) else _digits(value)

    def set(self, value: str) -> None:
        # The original digits (a policy's re-run puts originals back) are the number again.
        self.container[self.key] = self.number if value == _digits(self.number) else value


#: A value that needs its label to be found is one token: digits (a phone number, an SSN), a
#: key (an AWS secret key) or a password. Prose (a schema's descriptions) carries its own
#: labels, and a schema's ``"type": "string"`` needs none: those are read alone.
_LABELLED_CHARS = 256


def needs_label(label: str, text: str) -> bool:
    """Whether ``text`` may be an entity only its member name ``label`` reveals."""
    if len(text) > _LABELLED_CHARS or " " in text:
        return False
    if not text.isalpha():  # digits or punctuation: may be a number, a key, a password
        return True
    lowered = label.lower()  # letters only: a password needs its label, nothing else does
    return "pass" in lowered or "pwd" in lowered or "secret" in lowered


#: Integers below this have too few digits to be any entity (a phone number has 7 or more).
_MIN_NUMBER = 1_000_000
#: Integral floats up to this are scanned too: ``4111111111111111.0`` (or ``4.111111111111111e15``
#: in the body) is sent on as ``4111111111111111.0``, the card's digits; 19 digits is the
#: longest card, past it a float's digits are not the ones written.
_MAX_FLOAT = 1e19


def _number(value: Any) -> bool:
    if type(value) is int:
        return abs(value) >= _MIN_NUMBER
    return type(value) is float and _MIN_NUMBER <= abs(value) < _MAX_FLOAT and value.is_integer()


def _digits(value: int | float) -> str:
    """The digits a number is scanned as: an integral float without its ``.0``."""
    return str(int(value)) if type(value) is float else str(value)


@dataclass(slots=True)
class Walk:
    slots: list[Slot]
    unscanned: int = 0
    #: (holder, key, path of the holder): logprobs to drop when a text of the holder changed.
    logprobs: list[tuple[Any, Any, str]] = field(default_factory=list)
    #: Paths of opaque values and of strings no rule knows (for ``refuse`` settings).
    opaque: list[str] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    #: Values (members and elements of arrays and objects) the walk may still visit; None:
    #: unbounded. Each costs ~1-2 us here and a string more downstream, and a 4 MB body holds
    #: a million (``["a","a",…]`` in a field nobody knows took seconds); see ``spend``.
    left: int | None = None
    #: Integers in free-form JSON and unknown fields are scanned too (requests only: an
    #: answer's ``created`` would be scanned in every stream chunk, and an answer's numbers
    #: are the model's, in fields the table names).
    numbers: bool = False

    def spend(self, values: int) -> None:
        """Count the members of a container about to be visited; refuse past the bound."""
        if self.left is not None:
            self.left -= values
            if self.left < 0:
                raise content_too_complex(
                    "The request holds too many JSON values to scan for sensitive data "
                    "(redaction.max_request_values)."
                )


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
                for i in range(len(value) - 1, -1, -1):
                    push((value, i, child_shape, here, depth))
        elif treat is None and numbers and _number(value):  # in a field no rule knows
            label = key if isinstance(key, str) else None
            slots.append(NumberSlot(_join(parent, key), holder, key, label=label, number=value))
        elif treat is _SCAN or treat is Treat.JSON or treat is Treat.TOOL or treat is Treat.URL:
            walk.unscanned += 1  # a number where text belongs: nothing to scan, the upstream judges
    return walk


def request_slots(
    endpoint: Endpoint, body: dict[str, Any], unknown: Treat = Treat.SCAN, max_values: int | None = None
) -> Walk:
    return walk_body(table(endpoint, "request"), body, unknown, max_values=max_values, numbers=True)


def response_slots(endpoint: Endpoint, body: Any, unknown: Treat = Treat.SCAN) -> Walk:
    return walk_body(table(endpoint, "answer"), body, unknown)


def drop_logprobs(walk: Walk, changed_paths: list[str]) -> bool:
    """Logprobs beside a text that redaction changed spell the raw value: drop them (``[]``
    where the type wants a list, else ``null``). True if any was dropped."""
    dropped = False
    for holder, key, group in walk.logprobs:
        prefix = group + "."
        if holder[key] and any(p.startswith(prefix) for p in changed_paths):
            holder[key] = [] if isinstance(holder[key], list) else None
            dropped = True
    return dropped
