"""A text of a body as the redaction walk finds it (``Slot``), and the walk's result (``Walk``).

``locations.py`` walks a body and makes these; detection and replacement read and write the
text through them (``Slot.text``, ``Slot.set``), and ``Slot.view`` says what detection reads
when it is not the text itself (JSON source decoded, a URL, a value after its member name).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.redaction.budget import content_too_complex
from gateway.redaction.jsonview import JsonView, LabelView, UrlView, url_view


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
