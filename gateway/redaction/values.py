"""Redaction of values outside a model call's body: an MCP tool's arguments and its answer.

The MCP gateway (gateway/mcp) sends an agent's tool arguments to a server and the server's
answer back to the agent. Both go through the same engine and the same actions as a model
call: every string of the arguments gets the *prompt* actions (what an agent sends out:
``block`` refuses the call, ``restore`` leaves a placeholder the answer can bring back, except
for types restored into tool-call arguments on the chat path, which reach the tool as sent), every
text of the answer the *answer* actions (new values are redacted; placeholders the arguments
made are restored for the same caller). One ``ValueRedaction`` per MCP call keeps that call's
vault between the two. The summary has the shape of ``call.pii`` (entity counts and paths,
never values).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from gateway.call import Call, Endpoint
from gateway.redaction.config import Action
from gateway.redaction.redactor import Redactor
from gateway.redaction.state import RedactionState, Summary


class _Put:
    """Puts a new text where a string leaf was (a dict key or a list index)."""

    __slots__ = ("container", "key")

    def __init__(self, container: Any, key: Any) -> None:
        self.container = container
        self.key = key

    def __call__(self, text: str) -> None:
        self.container[self.key] = text


#: A string leaf of a JSON value: its path, its text and where to put a new text.
_Leaf = tuple[str, str, Callable[[str], None]]


class Blocked(Exception):
    """The arguments hold a type whose prompt action is ``block``; ``types`` names them."""

    def __init__(self, types: list[str]) -> None:
        super().__init__(", ".join(types))
        self.types = types


def _leaves(value: Any, path: str, out: list[_Leaf], limit: int) -> None:
    if len(out) >= limit:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, str):
                out.append((f"{path}.{key}", item, _Put(value, key)))
            else:
                _leaves(item, f"{path}.{key}", out, limit)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append((f"{path}[{i}]", item, _Put(value, i)))
            else:
                _leaves(item, f"{path}[{i}]", out, limit)


class ValueRedaction:
    """The redaction of one MCP call: arguments out (``outbound``), the answer back (``inbound``)."""

    def __init__(self, redactor: Redactor, policy_redact: dict[str, Any] | None = None) -> None:
        self.redactor = redactor
        # A call only to carry the policy's overrides into the redactor's actions.
        carrier = Call("mcp", Endpoint.CHAT, {}, {}, policy_redact=policy_redact or None)
        self.state: RedactionState = redactor.new_state(carrier)
        self.found: dict[str, Any] = {}

    async def _scan(self, value: Any, root: str) -> tuple[list[_Leaf], list[Any], Summary]:
        leaves: list[_Leaf] = []
        _leaves(value, root, leaves, self.redactor.settings.max_request_values)
        results = await self.redactor.engine.analyze_many([text for _, text, _ in leaves])
        summary = Summary()
        for (path, _, _), spans in zip(leaves, results, strict=True):
            if spans:
                summary.add(path, spans, Counter(s.entity for s in spans))
        return leaves, list(results), summary

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
        for (_, text, put), spans in zip(leaves, results, strict=True):
            if kept and spans:
                # Vault the passed values too, so the same value in the tool's answer comes
                # back to this agent as itself (restored), not as a new placeholder.
                self.redactor.apply(text, spans, self.state, json=False, output=False)
                spans = [s for s in spans if s.entity not in kept]
            if spans:
                changed = self.redactor.apply(text, spans, self.state, json=False, output=False)
                if changed != text:
                    put(changed)
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

    async def inbound(self, result: Any) -> dict[str, Any]:
        """Redact an answer in place with the answer actions, then restore this call's placeholders."""
        leaves, results, summary = await self._scan(result, "result")
        found = summary.as_dict()
        self.found["result"] = found
        for (_, text, put), spans in zip(leaves, results, strict=True):
            changed = self.redactor.apply(text, spans, self.state, json=False, output=True) if spans else text
            changed, n = self.state.vault.restore(changed, json=False)
            self.state.restored += n
            if changed != text:
                put(changed)
        return found
