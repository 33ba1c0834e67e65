"""What a property's name asks for, and what the user's words offer it.

A real model fills ``email`` with the email the user wrote and ``city`` with the place they
named; the mock does the same by the property's name (split into parts: ``customerEmail``,
``customer_email`` and ``customer-email`` all have the part ``email``) and the JSON-schema
``format``. These heuristics are cheap and deterministic; when nothing fits, ``args.py``
falls back to the schema (``default``, ``enum``) and then to a neutral value.
"""

from __future__ import annotations

import re
from typing import Any

from wardgate_mock.facts import TextFacts

MONEY_NAMES = ("amount", "price", "cost", "total", "sum", "usd", "eur", "balance", "fee", "value")
COUNT_NAMES = ("count", "limit", "quantity", "qty", "max", "top", "num", "page", "size", "days", "k")
_FREE_TEXT = (
    "query",
    "search",
    "question",
    "prompt",
    "text",
    "message",
    "body",
    "content",
    "input",
    "task",
    "instruction",
    "description",
    "reason",
    "note",
    "comment",
    "summary",
    "topic",
    "goal",
    "request",
    "draft",
    "reply",
    "q",
)
_SHORT_TEXT = ("subject", "title", "headline")
_PLACE_OR_NAME = (
    "name",
    "city",
    "location",
    "place",
    "country",
    "recipient",
    "customer",
    "person",
    "user",
    "who",
    "destination",
    "origin",
    "company",
    "account",
    "owner",
    "to",
    "from",
    "payee",
)
_NAME_PARTS = re.compile(r"[_\-\s]+|(?<=[a-z])(?=[A-Z])")


class Names:
    """Whether a property name is, or has a part that is, one of some words (parts cached)."""

    __slots__ = ("_parts",)

    def __init__(self) -> None:
        self._parts: dict[str, frozenset[str]] = {}

    def means(self, name: str, words: tuple[str, ...]) -> bool:
        parts = self._parts.get(name)
        if parts is None:
            parts = self._parts[name] = frozenset(
                [name.lower(), *(p.lower() for p in _NAME_PARTS.split(name))]
            )
        return not parts.isdisjoint(words)


def string_candidate(f: TextFacts, names: Names, schema: dict[str, Any], name: str) -> str | None:
    """A value from the message that fits this property, or None when nothing fits."""
    fmt = schema.get("format")
    if (
        fmt == "email"
        or names.means(name, ("email", "mail"))
        or (names.means(name, ("to", "recipient", "cc")) and f.emails)
    ):
        return f.emails[0] if f.emails else "user@example.com"
    if names.means(name, ("phone", "tel", "telephone", "mobile", "cell")):
        return f.phones[0] if f.phones else "+1-555-0100"
    if fmt in ("uri", "url") or names.means(name, ("url", "uri", "link", "href", "website")):
        return f.urls[0] if f.urls else "https://example.com"
    if fmt == "date-time":
        return "2025-01-01T00:00:00Z"
    if fmt == "date" or names.means(name, ("date", "day")):
        return f.dates[0] if f.dates else "2025-01-01"
    if names.means(name, ("currency",)):
        return f.currencies[0] if f.currencies else "USD"
    if names.means(name, ("language", "lang", "locale")):
        return "en"
    if names.means(name, ("id", "number", "no", "ref", "reference", "code", "sku")):
        return identifier(f, name)
    if names.means(name, _SHORT_TEXT):
        return f.first_words or name
    if names.means(name, _FREE_TEXT):
        return f.quoted[0] if f.quoted else (f.stripped or name)
    if names.means(name, _PLACE_OR_NAME):
        if f.quoted:
            return f.quoted[0]
        return f.names[0] if f.names else None
    return None


def identifier(facts: TextFacts, name: str) -> str:
    ids = facts.ids
    if ids:
        initial = name[:1].lower()
        return next((i for i in ids if i[:1].lower() == initial), ids[0])
    numbers = [v for v, _ in facts.numbers]
    if numbers:
        return str(int(numbers[0])) if numbers[0] == int(numbers[0]) else str(numbers[0])
    return facts.quoted[0] if facts.quoted else f"{name or 'id'}_1"


def fallback(f: TextFacts, name: str) -> str:
    if f.quoted:
        return f.quoted[0]
    return f.stripped[:200] if f.stripped else (name or "value")
