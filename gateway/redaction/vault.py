"""The per-request vault and the Presidio operator that writes through it.

Presidio's own deanonymizer is offset-based: it undoes replacements in the text it produced,
and fails on a model's answer, which is a new text. The vault instead remembers, for one
request, value -> placeholder (so the same e-mail is ``<EMAIL_ADDRESS_1>`` everywhere in the
request) and, for ``restore`` entities, placeholder -> value, so a placeholder the model
repeats can be put back, wherever it appears. It lives on the ``Call``, so values go back
only to the caller who sent them, and it dies with the request.

Values are kept *decoded*: a value found inside JSON source (tool-call arguments) has its
escapes resolved, so the same value gets the same placeholder in a message and in a tool
call, and a value restored into JSON source is re-escaped.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from typing import Any

import orjson
from presidio_anonymizer.operators import Operator, OperatorType

from gateway.redaction.config import Action
from gateway.redaction.placeholders import names
from gateway.redaction.spans import Spans

#: ``<EMAIL_ADDRESS_1>``: what the vault writes and what restoration looks for.
PLACEHOLDER_RE = re.compile(r"<([A-Z][A-Z0-9_]*)_(\d+)>")
#: In JSON source, with the quotes around it: a placeholder that stood for a number token goes
#: back as that number (``"<PHONE_NUMBER_1>"`` -> ``4155552671``).
_JSON_PLACEHOLDER_RE = re.compile(r'("?)<([A-Z][A-Z0-9_]*)_(\d+)>("?)')
#: The longest placeholder restoration has to wait for in a stream.
MAX_PLACEHOLDER_LEN = 64
#: The operator's name, should it be registered with a Presidio ``AnonymizerEngine``
#: (``engine.add_anonymizer(VaultOperator)``; the gateway itself applies it directly).
OPERATOR_NAME = "wardgate_vault"


def decode_json_fragment(value: str) -> str:
    """``a\\nb`` -> ``a`` newline ``b``; anything that is not a clean fragment stays as is."""
    if "\\" not in value:
        return value
    try:
        decoded = orjson.loads(b'"' + value.encode("utf-8", "surrogatepass") + b'"')
    except (orjson.JSONDecodeError, UnicodeError):
        return value
    return decoded if isinstance(decoded, str) else value


def encode_json_fragment(value: str) -> str:
    try:
        return orjson.dumps(value).decode()[1:-1]
    except TypeError:  # lone surrogates: orjson refuses them
        return value.encode("unicode_escape").decode("ascii").replace('"', '\\"')


class Vault:
    """One request's mapping between values and placeholders. Never logs or shows a value."""

    __slots__ = ("_by_entity", "_counters", "_keep_last", "_mask_char", "_numbers", "_restorable", "_salt")

    def __init__(self, salt: bytes, mask_char: str = "*", keep_last: dict[str, int] | None = None) -> None:
        self._salt = salt
        self._mask_char = mask_char
        self._keep_last = dict(keep_last or {})
        #: entity -> value -> placeholder (one dictionary per type: a dense text's loop looks
        #: values up without building a key tuple each).
        self._by_entity: dict[str, dict[str, str]] = {}
        self._counters: dict[str, int] = {}
        self._restorable: dict[str, str] = {}
        #: Placeholders that replaced a JSON number token (restored unquoted in JSON source).
        self._numbers: set[str] = set()

    def __repr__(self) -> str:  # values never appear in a repr, a log line or a traceback
        return f"Vault(placeholders={sum(map(len, self._by_entity.values()))}, restorable={len(self._restorable)})"

    @property
    def restorable(self) -> int:
        return len(self._restorable)

    def placeholder(self, entity: str, value: str, restorable: bool) -> str:
        by_value = self._by_entity.get(entity)
        if by_value is None:
            by_value = self._by_entity[entity] = {}
        ph = by_value.get(value)
        if ph is None:
            n = self._counters.get(entity, 0) + 1
            self._counters[entity] = n
            ph = f"<{entity}_{n}>"
            by_value[value] = ph
        if restorable:
            self._restorable[ph] = value
        return ph

    def write_placeholders(
        self, text: str, spans: list[tuple[int, int, str]], keep: Mapping[str, bool], out: list[str], pos: int
    ) -> int:
        """Append to ``out`` ``text`` from ``pos`` with each of the disjoint, sorted ``spans``
        replaced by its placeholder (``keep[entity]``: restorable); returns where it stopped
        (the end of the last span). ``placeholder`` inlined: a text of thousands of values
        (a contact list, resent on every call of a conversation) is one loop, ~0.35 us a value: a
        run of one type keeps its count in a local, names come from ``placeholders.names``."""
        by_entity, counters, restorable = self._by_entity, self._counters, self._restorable
        append = out.append
        current: str | None = None
        by_value: dict[str, str] = {}
        keep_it = False
        prefix = ""
        n = known = 0
        made: list[str] = []
        for start, end, entity in spans:
            if entity != current:  # runs of one type: its dictionary, flag and count read once
                if current is not None:
                    counters[current] = n
                current = entity
                by_value = by_entity.get(entity) or by_entity.setdefault(entity, {})
                keep_it = keep[entity]
                prefix = f"<{entity}_"
                n = counters.get(entity, 0)
                made = names(entity, n + len(spans))  # the names made once per process
                known = len(made)
            value = text[start:end]
            ph = by_value.get(value)
            if ph is None:
                n += 1
                ph = by_value[value] = made[n] if n < known else f"{prefix}{n}>"
            if keep_it:
                restorable[ph] = value
            append(text[pos:start])
            append(ph)
            pos = end
        if current is not None:
            counters[current] = n
        return pos

    def write_few(self, text: str, spans: Spans, keep: Mapping[str, bool]) -> str:
        """``text`` with each of its few disjoint, sorted ``spans`` replaced by its placeholder
        (``keep[entity]``: restorable): ``write_placeholders`` for a resent message (one value
        or two), without its set-up for thousands (a list of plain tuples, the names list, a
        run's locals): ~2 us a text instead of ~5 at load 7. The same placeholders, in the same
        order (a test checks it against ``write_placeholders``)."""
        by_entity, counters, restorable = self._by_entity, self._counters, self._restorable
        out: list[str] = []
        pos = 0
        for start, end, entity, _ in spans:
            value = text[start:end]
            by_value = by_entity.get(entity)
            if by_value is None:
                by_value = by_entity[entity] = {}
            ph = by_value.get(value)
            if ph is None:
                n = counters[entity] = counters.get(entity, 0) + 1
                ph = by_value[value] = f"<{entity}_{n}>"
            if keep[entity]:
                restorable[ph] = value
            out.append(text[pos:start])
            out.append(ph)
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def replacement(
        self, entity: str, raw: str, action: Action, *, json: bool, restorable: bool, number: bool = False
    ) -> str:
        """The text that replaces ``raw``. ``number``: ``raw`` is a JSON number token, so the
        replacement is a JSON string (the source stays valid JSON)."""
        value = decode_json_fragment(raw) if json and not number else raw
        if action is Action.MASK:
            keep = min(self._keep_last.get(entity, 0), len(raw) // 2)
            out = self._mask_char * (len(raw) - keep) + (raw[len(raw) - keep :] if keep else "")
        elif action is Action.HASH:
            digest = hmac.new(self._salt, value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
            out = f"<{entity}:{digest[:16]}>"
        else:
            out = self.placeholder(entity, value, restorable and action is Action.RESTORE)
            if number:
                self._numbers.add(out)
        return '"' + encode_json_fragment(out) + '"' if number else out

    def restore(
        self, text: str, *, json: bool = False, only: frozenset[str] | None = None
    ) -> tuple[str, int]:
        """Put restorable values back in place of their placeholders; returns (text, count).

        ``only``: the entity types that may be restored here (tool-call arguments restore
        only the types whose ``tool_arguments`` is on); others stay placeholders.
        """
        if not self._restorable or "<" not in text:
            return text, 0
        count = 0

        def sub(m: re.Match[str]) -> str:
            nonlocal count
            value = self._restorable.get(m.group(0))
            if value is None or (only is not None and m.group(1) not in only):
                return m.group(0)
            count += 1
            return value

        def sub_json(m: re.Match[str]) -> str:
            nonlocal count
            ph = m.group(0)[len(m.group(1)) : len(m.group(0)) - len(m.group(4))]
            value = self._restorable.get(ph)
            if value is None or (only is not None and m.group(2) not in only):
                return m.group(0)
            count += 1
            if m.group(1) and m.group(4) and ph in self._numbers:
                return value  # the number token it replaced
            return m.group(1) + encode_json_fragment(value) + m.group(4)

        if json:
            return _JSON_PLACEHOLDER_RE.sub(sub_json, text), count
        return PLACEHOLDER_RE.sub(sub, text), count

    def is_number(self, placeholder: str) -> bool:
        return placeholder in self._numbers

    def conceal(self, text: str) -> str:
        """The inverse of ``restore``: each restorable value back to its placeholder (longest
        first). For showing an answer to people who may not see the caller's values: an
        approval's record keeps placeholders, the real values are sealed beside it."""
        if not self._restorable or not text:
            return text
        for ph, value in sorted(self._restorable.items(), key=lambda kv: -len(kv[1])):
            if value and value in text:
                text = text.replace(value, ph)
        return text


class VaultOperator(Operator):
    """A Presidio anonymizer operator that asks the request's vault for each replacement."""

    def operate(self, text: str, params: dict[str, Any] | None = None) -> str:
        p = params or {}
        vault: Vault = p["vault"]
        return vault.replacement(
            p["entity_type"],
            text,
            p["action"],
            json=p["json"],
            restorable=p["restorable"],
            number=p.get("number", False),
        )

    def validate(self, params: dict[str, Any] | None = None) -> None:
        if (
            not params
            or not isinstance(params.get("vault"), Vault)
            or not isinstance(params.get("action"), Action)
        ):
            raise ValueError("wardgate_vault operator needs a Vault and an Action")

    def operator_name(self) -> str:
        return OPERATOR_NAME

    def operator_type(self) -> OperatorType:
        return OperatorType.Anonymize
