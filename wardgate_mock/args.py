"""Arguments for a tool call: a value for every required property, valid against its schema.

A real model fills arguments from what the user said; the mock does the same with cheap,
deterministic heuristics keyed on the property's name and type (an ``email`` gets the email
found in the message, an ``order_id`` the id-like token, an ``amount`` the money figure, a
``city`` the capitalised word, a ``query`` the message itself). When nothing in the message
fits, it falls back to the schema (``enum`` first value, ``default``, ``minimum``) and then to
a neutral value per type, so the arguments always validate.

The schema is the client's, so any JSON is read without error (a ``properties`` that is not an
object is no properties, a ``required`` that is not a list requires nothing), and what it can
cost is bounded: nesting, array and string lengths are capped, ``$ref`` fan-out, copied text
and ``pattern`` checks draw on the answer's ``Budget``, and a client's ``pattern`` is never run
by ``re`` (see ``wardgate_mock.regex``). A hostile schema gets arguments that may not validate; the
mock answers it, never fails on it.
"""

from __future__ import annotations

import math
from itertools import chain, islice
from typing import Any

import orjson

from wardgate_mock.budget import Budget
from wardgate_mock.facts import TextFacts
from wardgate_mock.names import COUNT_NAMES, MONEY_NAMES, Names, fallback, string_candidate
from wardgate_mock.pattern import example_for
from wardgate_mock.regex import SafePattern, compile_pattern

__all__ = ["ArgumentFiller", "Budget", "TextFacts", "fill_arguments"]

#: Nesting followed into a schema; deeper, a value is the neutral one of its type. (Past depth
#: 6 objects already keep only their required properties and arrays are empty.)
MAX_DEPTH = 24
#: The most items and characters a ``minItems`` / ``minLength`` gets (a client may ask 2**62).
MAX_ITEMS = 64
MAX_STRING = 10_000
#: Characters of a property name the name heuristics read (a key may be megabytes long).
_NAME_CHARS = 100
#: Entries of ``anyOf`` / ``oneOf`` / ``enum`` looked through; the first always remains a choice.
_SCAN_OPTIONS = 100
#: Words of the message tried against a ``pattern``, and the longest one tried.
_CANDIDATES = 200
_CANDIDATE_CHARS = 256
#: Longer ``$ref`` strings resolve to nothing (resolving splits them on every use).
_REF_CHARS = 1_000
#: Integers outside int64 are written as floats (orjson, like JSON parsers, refuses them).
_INT64 = 2**63


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def _float(x: Any) -> float | None:
    """``x`` as a finite float when it is a JSON number (an int too large for a float is None)."""
    if not _num(x):
        return None
    try:
        value = float(x)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _count(x: Any) -> int | None:
    return x if isinstance(x, int) and not isinstance(x, bool) else None


def _type_of(schema: Any) -> Any:
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    return kind


def _neutral(schema: Any) -> Any:
    """The plainest value of the schema's type: what a fill gets once depth or budget runs out."""
    kind = _type_of(schema)
    if kind == "object":
        return {}
    if kind == "array":
        return []
    if kind in ("integer", "number"):
        return 0
    return {"boolean": False, "null": None}.get(kind, "") if isinstance(kind, str) else ""


class ArgumentFiller:
    """Builds a schema-valid value from a JSON schema and the facts of one message."""

    def __init__(self, root: Any, facts: TextFacts, budget: Budget | None = None) -> None:
        self.root = root
        self.facts = facts
        self.budget = budget if budget is not None else Budget()
        self._names = Names()
        self._refs: dict[str, Any] = {}
        self._patterns: dict[str, tuple[SafePattern | None, str | None]] = {}
        self._sizes: dict[int, int] = {}

    def fill(self, schema: Any, name: str = "", depth: int = 0) -> Any:
        schema = self._resolve(schema)
        if not self.budget.take_nodes() or depth > MAX_DEPTH:
            return _neutral(schema)
        if not isinstance(schema, dict):
            return self._string({}, name)
        if "const" in schema:
            return self._schema_value(schema["const"], schema)
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self._schema_value(self._pick_enum(schema["enum"]), schema)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                usable = (o for o in options[:_SCAN_OPTIONS] if _type_of(self._resolve(o)) != "null")
                return self.fill(next(usable, options[0]), name, depth + 1)
        if isinstance(schema.get("allOf"), list):
            schema = self._merge_all_of(schema)
        kind = _type_of(schema)
        if kind is None:
            kind = "object" if "properties" in schema else "array" if "items" in schema else "string"
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind in ("integer", "number"):
            return self._number(schema, name, kind == "integer")
        if kind == "boolean":
            return schema["default"] if isinstance(schema.get("default"), bool) else False
        if kind == "null":
            return None
        return self._string(schema, name)

    def _resolve(self, schema: Any) -> Any:
        for _ in range(8):
            if not (isinstance(schema, dict) and isinstance(schema.get("$ref"), str)):
                return schema
            schema = self._target(schema["$ref"])
        return schema

    def _target(self, ref: str) -> dict[str, Any]:
        found = self._refs.get(ref)
        if found is None:
            node: Any = self.root if len(ref) <= _REF_CHARS else None
            for part in ref.lstrip("#/").split("/") if node is not None else ():
                node = node.get(part) if isinstance(node, dict) else None
            found = self._refs[ref] = node if isinstance(node, dict) else {}
        return found

    def _merge_all_of(self, schema: dict[str, Any]) -> dict[str, Any]:
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = self._resolve(part)
            if not isinstance(part, dict) or not self.budget.take_nodes(len(part)):
                continue
            for key, value in part.items():
                if key == "properties" and isinstance(value, dict) and self.budget.take_nodes(len(value)):
                    current = merged.get("properties")
                    merged["properties"] = {**(current if isinstance(current, dict) else {}), **value}
                elif key == "required" and isinstance(value, list) and self.budget.take_nodes(len(value)):
                    current = merged.get("required")
                    merged["required"] = [*(current if isinstance(current, list) else []), *value]
                elif key not in ("properties", "required"):
                    merged.setdefault(key, value)
        return merged

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties")
        if not isinstance(props, dict):
            props = {}
        required = schema.get("required")
        if isinstance(required, list):
            wanted = {r for r in required if isinstance(r, str)}
            keys = [k for k in props if k in wanted]
        else:
            keys = list(props) if depth <= 6 else []
        out: dict[str, Any] = {}
        for key in keys:
            if self.budget.nodes <= 0 or not self.budget.take_chars(len(key)):
                break
            out[key] = self.fill(props[key], key[:_NAME_CHARS], depth + 1)
        return out

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        lo = min(max(_count(schema.get("minItems")) or 0, 0), MAX_ITEMS)
        hi = _count(schema.get("maxItems"))
        hi = 10 if hi is None else hi
        if hi == 0 or depth > 6:
            return []
        if (
            _type_of(self._resolve(items)) == "string"
            and self._names.means(name, ("emails", "recipients", "to", "cc"))
            and self.facts.emails
        ):
            values: list[Any] = [self._charge(e) for e in self.facts.emails[:hi][:MAX_ITEMS]]
        else:
            values = [self.fill(items, name.rstrip("s"), depth + 1)]
        size = self._size(values[-1]) if len(values) < lo else 0
        while len(values) < lo and self.budget.take_chars(size):
            values.append(values[-1])
        return values

    def _size(self, value: Any) -> int:
        """Characters ``value`` serialises to (a value that cannot be serialised costs everything)."""
        if isinstance(value, str):
            return len(value)
        try:
            return len(orjson.dumps(value))
        except (orjson.JSONEncodeError, TypeError):
            return self.budget.chars + 1

    def _schema_value(self, value: Any, schema: dict[str, Any]) -> Any:
        """A ``const`` or ``enum`` value, paid for by its size (``$ref``s may repeat a big one)."""
        if value is None or isinstance(value, bool | int | float):
            return value
        size = self._sizes.get(id(value))
        if size is None:
            size = self._sizes[id(value)] = self._size(value)  # the schema keeps the value alive
        return value if self.budget.take_chars(size) else _neutral(schema)

    def _charge(self, value: str) -> str:
        """``value``, cut to what the character budget has left, and paid for."""
        if len(value) > self.budget.chars:
            value = value[: self.budget.chars]
        self.budget.take_chars(len(value))
        return value

    def _pick_enum(self, options: list[Any]) -> Any:
        lowered = self.facts.lowered
        for option in options[:_SCAN_OPTIONS]:
            if isinstance(option, str) and len(option) > 2:
                if not self.budget.take_steps(1 + (len(lowered) + len(option)) // 1024):
                    break
                if option.lower() in lowered:
                    return option
        return options[0]

    def _number(self, schema: dict[str, Any], name: str, integer: bool) -> int | float:
        facts = self.facts.numbers
        value: float | None = None
        if self._names.means(name, ("id", "number", "no")):
            value = next((v for v, _ in facts if v >= 100), self.facts.id_number)
        if value is None and facts:
            if self._names.means(name, MONEY_NAMES):
                value = next((v for v, money in facts if money), facts[0][0])
            elif self._names.means(name, COUNT_NAMES):
                value = next((v for v, _ in facts if 0 < v < 1000), None)
            else:
                value = facts[0][0]
        if value is None:
            value = _float(schema.get("default"))
            value = 1.0 if value is None else value
        lo, hi = _float(schema.get("minimum")), _float(schema.get("maximum"))
        xlo, xhi = _float(schema.get("exclusiveMinimum")), _float(schema.get("exclusiveMaximum"))
        if integer:
            n = round(value)
            if lo is not None and n < lo:
                n = math.ceil(lo)
            if xlo is not None and n <= xlo:
                n = math.floor(xlo) + 1
            if hi is not None and n > hi:
                n = math.floor(hi)
            if xhi is not None and n >= xhi:
                n = math.ceil(xhi) - 1
            return n if -_INT64 <= n < _INT64 else float(n)
        if lo is not None and value < lo:
            value = lo
        if xlo is not None and value <= xlo:
            value = xlo + 0.01
        if hi is not None and value > hi:
            value = hi
        if xhi is not None and value >= xhi:
            value = xhi - 0.01
        return int(value) if value.is_integer() and abs(value) < 2**53 else value

    def _string(self, schema: dict[str, Any], name: str) -> str:
        value = string_candidate(self.facts, self._names, schema, name)
        if value is None:
            default = schema.get("default")
            value = default if isinstance(default, str) else fallback(self.facts, name)
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            value = self._match_pattern(pattern, value)
        hi, lo = _count(schema.get("maxLength")), _count(schema.get("minLength"))
        if hi is not None and len(value) > hi:
            value = value[: max(hi, 0)]
        if lo is not None and len(value) < lo:
            value = value + "x" * (min(lo, MAX_STRING) - len(value))
        return self._charge(value)

    def _pattern(self, pattern: str) -> tuple[SafePattern | None, str | None]:
        """The pattern compiled for bounded matching, and a string built to match it."""
        found = self._patterns.get(pattern)
        if found is None:
            compiled = compile_pattern(pattern, self.budget)
            found = self._patterns[pattern] = (compiled, example_for(pattern) if compiled else None)
        return found

    def _match_pattern(self, pattern: str, value: str) -> str:
        """``value`` if it matches, else a word of the message that does, else a built example.

        A pattern that cannot be checked safely (see ``wardgate_mock.regex``) leaves ``value`` as it is.
        """
        compiled, example = self._pattern(pattern)
        if compiled is None or compiled.search(value, self.budget):
            return value
        f = self.facts
        candidates = chain(f.ids, f.emails, f.quoted, f.names, (str(int(v)) for v, _ in f.numbers), f.words())
        for candidate in islice(candidates, _CANDIDATES):
            if len(candidate) <= _CANDIDATE_CHARS and compiled.search(candidate, self.budget):
                return candidate
        return example if example is not None and compiled.search(example, self.budget) else value


def fill_arguments(schema: dict[str, Any], facts: TextFacts, budget: Budget) -> dict[str, Any]:
    """Arguments for a tool whose ``parameters`` is ``schema``, taken from the message's ``facts``."""
    if not schema:
        return {}
    value = ArgumentFiller(schema, facts, budget).fill(schema)
    return value if isinstance(value, dict) else {}
