"""Redaction of values outside a model call's body: an MCP tool's arguments and its answer.

The MCP gateway (gateway/mcp) sends an agent's tool arguments to a server and the server's
answer back to the agent. Both go through the same engine and the same actions as a model
call: every string and number of the arguments (each read after its member name, see
``_Leaf``) gets the *prompt* actions (what an agent sends out: ``block`` refuses the call,
``restore`` leaves a placeholder the answer can bring back, except for types restored into
tool-call arguments on the chat path, which reach the tool as sent), every text of the
answer the *answer* actions (new values are redacted; placeholders the arguments made are
restored for the same caller), its errors and the server's notifications alike. One
``ValueRedaction`` per MCP call keeps that call's vault between the two. The summary has the
shape of ``call.pii`` (entity counts and paths, never values).
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from gateway.redaction import blobs
from gateway.redaction.budget import content_too_complex
from gateway.redaction.config import Action
from gateway.redaction.jsonview import JsonView, UrlView, is_json, looks_like_json, url_view
from gateway.redaction.slots import needs_label
from gateway.redaction.spans import Span, Spans

if TYPE_CHECKING:
    # The redactor and the state (through the vault's Presidio operator) import Presidio and
    # spaCy, ~1 s of CPU: the MCP gateway imports this module whether redaction is on or off.
    from gateway.redaction.redactor import Redactor
    from gateway.redaction.state import RedactionState, Summary


class _Put:
    """Puts a new text where a leaf was (a dict key or a list index)."""

    __slots__ = ("container", "key")

    def __init__(self, container: Any, key: Any) -> None:
        self.container = container
        self.key = key

    def __call__(self, text: str) -> None:
        self.container[self.key] = text


class _Reencode(_Put):
    """Puts a redacted blob text back as base64 in the blob's own encoding (``blobs.py``)."""

    __slots__ = ("decoded",)

    def __init__(self, container: Any, key: Any, decoded: blobs.Decoded) -> None:
        super().__init__(container, key)
        self.decoded = decoded

    def __call__(self, text: str) -> None:
        self.container[self.key] = self.decoded.encode(text)


@dataclass(slots=True)
class _Leaf:
    """A string or number leaf of a JSON value, as detection reads it.

    ``scanned`` is what the engine analyses: the leaf's text after its member name
    (``password: hunter2``), so a recognizer that needs a label (a password, a labelled SSN
    or phone number, an AWS secret key) finds it as it does in the same arguments written as
    one JSON text on the chat path; ``skip`` is that label's length. A string that is itself
    a JSON document (an SDK server's text part for a dict result) is analysed as JSON source
    instead (``view``), so a number redacted in it becomes a string placeholder and the text
    still parses. A number leaf (``{"card": 4111111111111111}``) is scanned as its digits and
    becomes its placeholder string when anything in it is redacted."""

    path: str
    text: str
    put: Callable[[str], None]
    scanned: str
    skip: int = 0
    view: JsonView | None = None
    #: ``view`` reads the leaf as JSON source (placeholders written as JSON strings), not as a URL.
    json: bool = False

    def spans(self, found: Spans) -> list[Span]:
        """``found`` (spans of ``scanned``) as spans of ``text``."""
        if self.view is not None:
            view = self.view
            return [Span(view.to_source(s.start), view.to_source(s.end), s.entity, s.score) for s in found]
        skip = self.skip
        if not skip:
            return list(found)
        return [Span(max(s.start - skip, 0), s.end - skip, s.entity, s.score) for s in found if s.end > skip]


#: How much of a member name is kept as the label before its value (every recognizer's
#: label window is shorter).
_LABEL_CHARS = 48


def _leaf(path: str, value: Any, put: Callable[[str], None], label: Any) -> _Leaf:
    """``value``: a string, or an int ``_scanned_number`` accepts."""
    if type(value) is str:
        text = value
        if looks_like_json(text) and is_json(text):
            view = JsonView(text)
            return _Leaf(path, text, put, view.decoded, view=view, json=True)
        if type(label) is str and _is_url_member(label) and not text.startswith("data:"):
            # As the chat path's URL fields: percent-decoded, each path segment and query value
            # a token of its own (``kb://customers/jane%40example.com`` holds an address).
            url = UrlView(url_view(text))
            return _Leaf(path, text, put, url.decoded, view=url)
    else:
        text = str(value)
    if label and type(label) is str and needs_label(label, text):
        head = f"{label[-_LABEL_CHARS:]}: "
        return _Leaf(path, text, put, head + text, len(head))
    return _Leaf(path, text, put, text)


#: Member names whose string is a URL (MCP ``uri``, ``uriTemplate``, ``websiteUrl``, ``src``).
_URL_MEMBERS = frozenset({"uri", "uritemplate", "url", "src", "href", "websiteurl"})


def _is_url_member(label: str) -> bool:
    lowered = label.lower()
    return lowered in _URL_MEMBERS or lowered.endswith(("_url", "url", "_uri"))


def _scanned(value: Any) -> bool:
    """A leaf worth scanning: a string, or an integer with digits enough to be an entity."""
    return type(value) is str or (type(value) is int and abs(value) >= 1_000_000)


class Blocked(Exception):
    """The arguments hold a type whose prompt action is ``block``; ``types`` names them."""

    def __init__(self, types: list[str]) -> None:
        super().__init__(", ".join(types))
        self.types = types


def _leaves(
    value: Any, path: str, out: list[_Leaf], limit: int, label: Any = None, opaque: list[str] | None = None
) -> None:
    """The string and number leaves of ``value``, each labelled by its nearest member name; a
    resource's base64 ``blob`` as the text it decodes to (``opaque``: the paths of blobs that
    are not text, read as their base64 literal)."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        if _scanned(item):
            if len(out) >= limit:  # never sent half-scanned: padding must not hide a value
                raise content_too_complex(
                    "The arguments hold too many values to scan for sensitive data (redaction.max_request_values)."
                )
            here = f"{path}[{key}]" if type(key) is int else f"{path}.{key}"
            if key == "blob" and type(item) is str and "uri" in value:
                decoded = blobs.decode(item, value.get("mimeType"))
                if decoded is not None:
                    out.append(_leaf(here, decoded.text, _Reencode(value, key, decoded), key))
                    continue
                if opaque is not None:
                    opaque.append(here)
            out.append(_leaf(here, item, _Put(value, key), label if type(key) is int else key))
        elif isinstance(item, (dict, list)):
            here = f"{path}[{key}]" if type(key) is int else f"{path}.{key}"
            _leaves(item, here, out, limit, label if type(key) is int else key, opaque)


class ValueRedaction:
    """The redaction of one MCP call: arguments out (``outbound``), the answer back (``inbound``)."""

    def __init__(self, redactor: Redactor, policy_redact: dict[str, Any] | None = None) -> None:
        self.redactor = redactor
        # No Call (~45 fields) to carry the policy's overrides: new_state takes them directly.
        self.state: RedactionState = redactor.new_state(None, policy_redact)
        self.found: dict[str, Any] = {}
        #: Paths of resource blobs whose bytes are not text (the caller decides: mcp.binary_blobs).
        self.opaque: list[str] = []

    async def _scan(
        self, value: Any, root: str, limit: int | None = None
    ) -> tuple[list[_Leaf], list[list[Span]], Summary]:
        leaves: list[_Leaf] = []
        _leaves(value, root, leaves, limit or self.redactor.settings.max_request_values, opaque=self.opaque)
        # An answer (``limit`` given) is scanned in full as the chat path's are: over the work
        # budget it is counted (wardgate_redaction_answer_over_budget_total), not refused.
        budget = self.redactor.answer_budget(self.state) if limit else None
        found = await self.redactor.engine.analyze_many([leaf.scanned for leaf in leaves], budget)
        results = [leaf.spans(spans) if spans else [] for leaf, spans in zip(leaves, found, strict=True)]
        from gateway.redaction.state import Summary  # loaded with the redactor: a dict lookup

        summary = Summary()
        for leaf, spans in zip(leaves, results, strict=True):
            if spans:
                summary.add(leaf.path, tuple(spans), Counter(s.entity for s in spans))
        return leaves, results, summary

    async def outbound(self, arguments: Any) -> dict[str, Any]:
        """Redact the arguments in place with the prompt actions; raises ``Blocked``."""
        leaves, results, summary = await self._scan(arguments, "arguments")
        prompt = self.state.actions.prompt
        blocked = sorted(e for e in summary.entities if prompt.get(e) is Action.BLOCK)
        found = summary.as_dict()
        found["actions"] = {e: str(prompt[e]) for e in summary.entities if e in prompt}
        self.found["arguments"] = found
        if blocked:
            found["blocked"] = blocked
            raise Blocked(blocked)
        # The server runs the tool, as the agent's own code does on the chat path, where a
        # `restore` value the caller sent comes back into the model's tool-call arguments
        # when its type allows it (`tool_arguments`; never secrets or card numbers). The same
        # values reach an MCP tool as sent (an e-mail for send_email); the rest stays a placeholder.
        kept = frozenset(
            e
            for e in summary.entities
            if prompt.get(e) is Action.RESTORE and e in self.state.actions.tool_restore
        )
        if kept:
            found["passed"] = sorted(kept)
        for leaf, spans in zip(leaves, results, strict=True):
            text, json = leaf.text, leaf.json
            if kept and spans:
                # Vault the passed values too, so the same value in the tool's answer comes
                # back to this agent as itself (restored), not as a new placeholder.
                self.redactor.apply(text, spans, self.state, json=json, output=False)
                spans = [s for s in spans if s.entity not in kept]
            if spans:
                changed = self.redactor.apply(text, spans, self.state, json=json, output=False)
                if changed != text:
                    leaf.put(changed)
        return found

    def conceal(self, value: Any) -> Any:
        """``value`` (a copy) with every value this call vaulted shown as its placeholder: for
        records others read (an approval's listing), whatever reached the tool."""
        if isinstance(value, str):
            return self.state.vault.conceal(value)
        if isinstance(value, dict):
            return {k: self.conceal(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.conceal(v) for v in value]
        return value

    async def inbound(self, result: Any, root: str = "result") -> dict[str, Any]:
        """Redact an answer in place with the answer actions, then restore this call's
        placeholders. ``root``: what it is (``result``, ``error``, ``notifications``: a server's
        log line or progress message during the call, which the agent reads as well)."""
        # An answer is scanned in full, as on the chat path (its size is bounded by
        # mcp.max_response_bytes): a leaf past the request's value budget reaches the agent too.
        leaves, results, summary = await self._scan(result, root, sys.maxsize)
        found = summary.as_dict()
        if root == "notifications" and "notifications" in self.found:
            before = self.found["notifications"]
            found["entities"] = dict(Counter(before["entities"]) + Counter(found["entities"]))
            found["locations"] = before["locations"] + found["locations"]
        if self.opaque:
            found["opaque_blobs"] = len(self.opaque)
        self.found[root] = found
        for leaf, spans in zip(leaves, results, strict=True):
            text, json = leaf.text, leaf.json
            changed = self.redactor.apply(text, spans, self.state, json=json, output=True) if spans else text
            changed, n = self.state.vault.restore(changed, json=json)
            self.state.restored += n
            if changed != text:
                leaf.put(changed)
        return found
