"""Arguments for a tool call: a value for every required property, valid against its schema.

A real model fills arguments from what the user said; the mock does the same with cheap,
deterministic heuristics keyed on the property's name and type (an ``email`` gets the email
found in the message, an ``order_id`` the id-like token, an ``amount`` the money figure, a
``city`` the capitalised word, a ``query`` the message itself). When nothing in the message
fits, it falls back to the schema (``enum`` first value, ``default``, ``minimum``) and then to
a neutral value per type, so the arguments always validate.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from gateway.providers.mock_pattern import example_for

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+|<EMAIL[A-Z_]*_\d+>")
#: A redaction placeholder (``<EMAIL_ADDRESS_1>``): copied into arguments so the gateway restores it.
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z_]*_\d+>")
_PHONE = re.compile(r"<PHONE[A-Z_]*_\d+>|\+?\d[\d\s().-]{7,}\d")
_URL = re.compile(r"https?://[^\s)\]>\"']+")
_ID = re.compile(r"\b(?:[A-Za-z]{1,8}[-_]\d+|[A-Za-z]{1,8}\d{2,})\b|#\d+")
_NUMBER = re.compile(r"(?<![\w.])([$€£]\s?)?(-?\d+(?:[.,]\d+)?)(\s?(?:usd|eur|gbp|dollars?|euros?))?", re.I)
_QUOTED = re.compile(r"\"([^\"]+)\"|'([^']{2,})'|“([^”]+)”")
_CAPITAL = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)*")
_AFTER_PREP = re.compile(r"\b(?:in|to|for|at|from|about|of)\s+([A-Za-z][\w-]*)")
_CURRENCY = re.compile(r"\b(USD|EUR|GBP|JPY|CHF|CAD|AUD)\b")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_MONEY_NAMES = ("amount", "price", "cost", "total", "sum", "usd", "eur", "balance", "fee", "value")
_COUNT_NAMES = ("count", "limit", "quantity", "qty", "max", "top", "num", "page", "size", "days", "k")
_FREE_TEXT = (
    "query", "search", "question", "prompt", "text", "message", "body", "content", "input", "task",
    "instruction", "description", "reason", "note", "comment", "summary", "topic", "goal", "request",
    "draft", "reply", "q",
)  # fmt: skip
_SHORT_TEXT = ("subject", "title", "headline")
_PLACE_OR_NAME = (
    "name", "city", "location", "place", "country", "recipient", "customer", "person", "user", "who",
    "destination", "origin", "company", "account", "owner", "to", "from", "payee",
)  # fmt: skip
_NOT_NAMES = frozenset({"I", "Please", "What", "The", "Can", "Could", "Would", "Then", "And", "Use", "Call"})


@dataclass(slots=True)
class TextFacts:
    """What the user's message offers to fill arguments with (extracted once, lazily)."""

    text: str
    _cache: dict[str, list[Any]] = field(default_factory=dict)

    def _get(self, key: str) -> list[Any]:
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = _EXTRACT[key](self.text)
        return found

    @property
    def emails(self) -> list[str]:
        return self._get("emails")

    @property
    def phones(self) -> list[str]:
        return self._get("phones")

    @property
    def urls(self) -> list[str]:
        return self._get("urls")

    @property
    def ids(self) -> list[str]:
        return self._get("ids")

    @property
    def numbers(self) -> list[tuple[float, bool]]:
        """(value, looks like money) for every number in the text."""
        return self._get("numbers")

    @property
    def quoted(self) -> list[str]:
        return self._get("quoted")

    @property
    def names(self) -> list[str]:
        return self._get("names")


def _plain(text: str) -> str:
    """The text without emails and placeholders, whose digits are not numbers or ids."""
    return _PLACEHOLDER.sub(" ", _EMAIL.sub(" ", text))


def _numbers(text: str) -> list[tuple[float, bool]]:
    out = []
    for m in _NUMBER.finditer(_ID.sub(" ", _plain(text))):
        raw = m.group(2).replace(",", ".")
        out.append((float(raw), bool(m.group(1) or m.group(3) or "." in raw)))
    return out


def _names(text: str) -> list[str]:
    found = [m.group(0) for m in _CAPITAL.finditer(text) if m.group(0).split()[0] not in _NOT_NAMES]
    found += [m.group(1) for m in _AFTER_PREP.finditer(text) if not m.group(1).isdigit()]
    return found


_EXTRACT = {
    "emails": lambda t: _EMAIL.findall(t),
    "phones": lambda t: _PHONE.findall(t),
    "urls": lambda t: _URL.findall(t),
    "ids": lambda t: [m.group(0).lstrip("#") for m in _ID.finditer(_plain(t))],
    "numbers": _numbers,
    "quoted": lambda t: [next(g for g in m.groups() if g) for m in _QUOTED.finditer(t)],
    "names": _names,
}


def _num(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


_NAME_PARTS = re.compile(r"[_\-\s]+|(?<=[a-z])(?=[A-Z])")


class ArgumentFiller:
    """Builds a schema-valid value from a JSON schema and the facts of one message."""

    def __init__(self, root: dict[str, Any], facts: TextFacts) -> None:
        self.root = root
        self.facts = facts
        self._parts: dict[str, frozenset[str]] = {}

    def _is(self, name: str, words: tuple[str, ...]) -> bool:
        """Whether the property name is, or has a part that is, one of ``words``."""
        parts = self._parts.get(name)
        if parts is None:
            parts = self._parts[name] = frozenset(
                [name.lower(), *(p.lower() for p in _NAME_PARTS.split(name))]
            )
        return not parts.isdisjoint(words)

    def fill(self, schema: Any, name: str = "", depth: int = 0) -> Any:
        schema = self._resolve(schema)
        if not isinstance(schema, dict):
            return self._string({}, name)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return self._pick_enum(schema["enum"], name)
        for key in ("anyOf", "oneOf"):
            options = schema.get(key)
            if isinstance(options, list) and options:
                usable = [o for o in options if self._resolve(o).get("type") != "null"] or options
                return self.fill(usable[0], name, depth + 1)
        if isinstance(schema.get("allOf"), list):
            schema = _merge_all_of([self._resolve(s) for s in schema["allOf"]], schema)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
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
            node: Any = self.root
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node.get(part) if isinstance(node, dict) else None
            schema = node if isinstance(node, dict) else {}
        return schema

    def _object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        props = schema.get("properties") or {}
        if depth > 6:
            props = {k: v for k, v in props.items() if k in (schema.get("required") or ())}
        required = schema.get("required")
        keys = [k for k in props if k in required] if isinstance(required, list) else list(props)
        return {key: self.fill(props[key], key, depth + 1) for key in keys}

    def _array(self, schema: dict[str, Any], name: str, depth: int) -> list[Any]:
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        lo = schema.get("minItems") if isinstance(schema.get("minItems"), int) else 0
        hi = schema.get("maxItems") if isinstance(schema.get("maxItems"), int) else 10
        if hi == 0 or depth > 6:
            return []
        resolved = self._resolve(items)
        if (
            resolved.get("type") == "string"
            and self._is(name, ("emails", "recipients", "to", "cc"))
            and self.facts.emails
        ):
            values: list[Any] = self.facts.emails[:hi]
        else:
            values = [self.fill(items, name.rstrip("s"), depth + 1)]
        while len(values) < lo:
            values.append(values[-1] if values else self.fill(items, name, depth + 1))
        return values

    def _pick_enum(self, options: list[Any], name: str) -> Any:
        lowered = self.facts.text.lower()
        for option in options:
            if isinstance(option, str) and len(option) > 2 and option.lower() in lowered:
                return option
        return options[0]

    def _number(self, schema: dict[str, Any], name: str, integer: bool) -> int | float:
        facts = self.facts.numbers
        value: float | None = None
        if self._is(name, ("id", "number", "no")):
            digits = [float(d) for i in self.facts.ids for d in re.findall(r"\d+", i)[:1]]
            value = next((v for v, _ in facts if v >= 100), digits[0] if digits else None)
        if value is None and facts:
            if self._is(name, _MONEY_NAMES):
                value = next((v for v, money in facts if money), facts[0][0])
            elif self._is(name, _COUNT_NAMES):
                value = next((v for v, _ in facts if 0 < v < 1000), None)
            else:
                value = facts[0][0]
        if value is None:
            default = schema.get("default")
            value = (
                float(default) if isinstance(default, int | float) and not isinstance(default, bool) else 1.0
            )
        lo, hi = schema.get("minimum"), schema.get("maximum")
        xlo, xhi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if integer:
            n = round(value)
            if _num(lo) and n < lo:
                n = math.ceil(lo)
            if _num(xlo) and n <= xlo:
                n = math.floor(xlo) + 1
            if _num(hi) and n > hi:
                n = math.floor(hi)
            if _num(xhi) and n >= xhi:
                n = math.ceil(xhi) - 1
            return n
        if _num(lo) and value < lo:
            value = float(lo)
        if _num(xlo) and value <= xlo:
            value = float(xlo) + 0.01
        if _num(hi) and value > hi:
            value = float(hi)
        if _num(xhi) and value >= xhi:
            value = float(xhi) - 0.01
        return int(value) if value == int(value) else value

    def _string(self, schema: dict[str, Any], name: str) -> str:
        value = self._string_candidate(schema, name)
        if value is None:
            default = schema.get("default")
            value = default if isinstance(default, str) else self._fallback(name)
        pattern = schema.get("pattern")
        if isinstance(pattern, str):
            value = self._match_pattern(pattern, value)
        hi, lo = schema.get("maxLength"), schema.get("minLength")
        if isinstance(hi, int) and len(value) > hi:
            value = value[:hi]
        if isinstance(lo, int) and len(value) < lo:
            value = value + "x" * (lo - len(value))
        return value

    def _string_candidate(self, schema: dict[str, Any], name: str) -> str | None:
        """A value from the message that fits this property, or None when nothing fits."""
        f, fmt = self.facts, schema.get("format")
        if (
            fmt == "email"
            or self._is(name, ("email", "mail"))
            or (self._is(name, ("to", "recipient", "cc")) and f.emails)
        ):
            return f.emails[0] if f.emails else "user@example.com"
        if self._is(name, ("phone", "tel", "telephone", "mobile", "cell")):
            return f.phones[0] if f.phones else "+1-555-0100"
        if fmt in ("uri", "url") or self._is(name, ("url", "uri", "link", "href", "website")):
            return f.urls[0] if f.urls else "https://example.com"
        if fmt == "date-time":
            return "2025-01-01T00:00:00Z"
        if fmt == "date" or self._is(name, ("date", "day")):
            found = _DATE.findall(f.text)
            return found[0] if found else "2025-01-01"
        if self._is(name, ("currency",)):
            found = _CURRENCY.findall(f.text)
            return found[0] if found else "USD"
        if self._is(name, ("language", "lang", "locale")):
            return "en"
        if self._is(name, ("id", "number", "no", "ref", "reference", "code", "sku")):
            return self._identifier(name)
        if self._is(name, _SHORT_TEXT):
            return " ".join(f.text.split()[:8]) or name
        if self._is(name, _FREE_TEXT):
            return f.quoted[0] if f.quoted else (f.text.strip() or name)
        if self._is(name, _PLACE_OR_NAME):
            if f.quoted:
                return f.quoted[0]
            return f.names[0] if f.names else None
        return None

    def _identifier(self, name: str) -> str:
        ids = self.facts.ids
        if ids:
            initial = name[:1].lower()
            return next((i for i in ids if i[:1].lower() == initial), ids[0])
        numbers = [v for v, _ in self.facts.numbers]
        if numbers:
            return str(int(numbers[0])) if numbers[0] == int(numbers[0]) else str(numbers[0])
        return self.facts.quoted[0] if self.facts.quoted else f"{name or 'id'}_1"

    def _fallback(self, name: str) -> str:
        f = self.facts
        if f.quoted:
            return f.quoted[0]
        text = f.text.strip()
        return text[:200] if text else (name or "value")

    def _match_pattern(self, pattern: str, value: str) -> str:
        try:
            rx = re.compile(pattern)
        except re.error:
            return value
        if rx.search(value):
            return value
        f = self.facts
        candidates: list[str] = [
            *f.ids,
            *f.emails,
            *f.quoted,
            *f.names,
            *(str(int(v)) for v, _ in f.numbers),
            *f.text.split(),
        ]
        found = next((c for c in candidates if rx.search(c)), None)
        if found is not None:
            return found
        example = example_for(pattern)
        return example if example is not None and rx.search(example) else value


def _merge_all_of(parts: list[Any], base: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in base.items() if k != "allOf"}
    for part in parts:
        if not isinstance(part, dict):
            continue
        for key, value in part.items():
            if key == "properties":
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required":
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def fill_arguments(schema: dict[str, Any], text: str) -> dict[str, Any]:
    """Arguments for a tool whose ``parameters`` is ``schema``, taken from ``text`` where they fit."""
    if not schema:
        return {}
    value = ArgumentFiller(schema, TextFacts(text)).fill(schema)
    return value if isinstance(value, dict) else {}
