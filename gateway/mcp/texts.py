"""What a server lists and how it introduces itself: texts a model reads besides the answers.

Clients put a tool's description and schemas, a prompt's or a resource's description and a
server's ``instructions`` into the model's context as they are, so a hostile or compromised
server can plant a customer's card or an API key there, or an instruction. They are guarded
like a tool's answer:

    tools/list, prompts/list,      every text of every item (description, title, annotations,
    resources/list,                input/output schema descriptions, defaults, examples, enum
    resources/templates/list       values, ``_meta``) redacted with the answer actions; an item
                                   whose identifier (name, URI, URI template) that would change
                                   is hidden (a placeholder cannot be called or read); then the
                                   policy: an item the caller may not use is hidden (stage
                                   "list"; tools, resources, prompts), as is one any of whose
                                   texts carries an injection marker (stage "result": *tool
                                   poisoning*); ``nextCursor`` passes as it is (opaque, it only
                                   goes back to the server that made it)
    initialize, server/discover    capabilities filtered (protocol.py); the result redacted
                                   (``instructions``, ``serverInfo`` and its 2026-07-28
                                   ``_meta`` stamp); a marker in them drops the instructions
                                   and shows the server by its configured name

An item that held no finding is remembered by a digest of its JSON (``CleanItems``, per
redactor), so the next listing of an unchanged tool costs a hash instead of a scan; an item
that held a finding is never remembered (nothing of a value is kept across calls).
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from gateway.mcp import identity
from gateway.mcp.exchange import Exchange
from gateway.mcp.jsonrpc import McpError
from gateway.mcp.protocol import filter_server_capabilities
from gateway.mcp.relay import AnswerHook
from gateway.policy.textkey import text_key
from gateway.redaction.values import ValueRedaction

Decide = Callable[..., Awaitable[Any]]
#: Where a 2026-07-28 result carries the server's name and title (every result may).
SERVER_INFO_META = "io.modelcontextprotocol/serverInfo"
#: Listings: method → (the result's list, the member that identifies an item).
LISTS = {
    "tools/list": ("tools", "name"),
    "resources/list": ("resources", "uri"),
    "resources/templates/list": ("resourceTemplates", "uriTemplate"),
    "prompts/list": ("prompts", "name"),
}


class CleanItems:
    """Digests (BLAKE2b-128 of the item's JSON) of listed items that held no finding, for one
    redactor: a reload that changes the redactor forgets them all. Bounded: cleared when full."""

    def __init__(self, size: int = 8192) -> None:
        self._size = size
        self._digests: set[bytes] = set()
        self._owner: weakref.ref[Any] | None = None

    def digest(self, redactor: Any, item: Any) -> bytes:
        if self._owner is None or self._owner() is not redactor:
            self._digests.clear()
            self._owner = weakref.ref(redactor)
        return hashlib.blake2b(orjson.dumps(item), digest_size=16).digest()

    def __contains__(self, digest: bytes) -> bool:
        return digest in self._digests

    def add(self, digest: bytes) -> None:
        if len(self._digests) >= self._size:
            self._digests.clear()
        self._digests.add(digest)


class McpTexts:
    def __init__(
        self,
        decide: Decide,
        redactor: Callable[[], Any],
        policy_on: Callable[[], bool],
        learn: Callable[[str, list[str]], None],
    ) -> None:
        self._decide = decide
        self._redactor = redactor
        self._policy_on = policy_on
        self._learn = learn
        self.clean = CleanItems()

    # -- listings ------------------------------------------------------------------------
    def list_hook(self, ex: Exchange) -> AnswerHook:
        field, key = LISTS[ex.method or ""]

        async def hook(answer: dict[str, Any]) -> dict[str, Any]:
            result = answer.get("result")
            items = result.get(field) if isinstance(result, dict) else None
            if not isinstance(items, list):
                return await self._redact(ex, answer)
            assert isinstance(result, dict)
            named = [t for t in items if isinstance(t, dict) and isinstance(t.get(key), str)]
            reasons: list[str] = []
            named = await self._redact_items(ex, field, key, named, reasons)
            await self._redact_rest(ex, result, field)
            if field == "tools":
                self._learn(ex.server_name, [t["name"] for t in named])
            if self._policy_on():
                kept = await self._shown(ex, field, named)
                if len(kept) < len(named):
                    reasons.append(f"{len(named) - len(kept)} {field} hidden by policy")
                named = kept
            result[field] = named
            if reasons:
                ex.reasons = reasons
            return answer

        return hook

    async def _redact_items(
        self, ex: Exchange, field: str, key: str, named: list[dict[str, Any]], reasons: list[str]
    ) -> list[dict[str, Any]]:
        """The items, redacted; those whose identifier redaction changed are left out."""
        redactor = self._redactor()
        if redactor is None or not named:
            return named
        whole = self.clean.digest(redactor, named)  # an unchanged listing: one hash
        if whole in self.clean:
            return named
        digests = [self.clean.digest(redactor, item) for item in named]
        pending = {i: item for i, item in enumerate(named) if digests[i] not in self.clean}
        if not pending:
            self.clean.add(whole)
            return named
        keys = {i: item[key] for i, item in pending.items()}
        values = self._values(ex, redactor)
        found = await values.inbound(pending, f"result.{field}")
        if found["entities"]:
            ex.redaction = {**(ex.redaction or {}), "result": found}
        touched = {_index(loc["path"], field) for loc in found["locations"]}
        for i in pending:
            if i not in touched:
                self.clean.add(digests[i])
        if not touched:
            self.clean.add(whole)
        changed = {i for i in pending if pending[i].get(key) != keys[i]}
        if changed:
            reasons.append(f"{len(changed)} {field} hidden: their {key} holds personal data or a secret")
        return [item for i, item in enumerate(named) if i not in changed]

    async def _redact_rest(self, ex: Exchange, result: dict[str, Any], field: str) -> None:
        """The result's other members (``_meta``, ...), but not ``nextCursor`` (opaque: the
        client sends it back to the server that made it, where a placeholder would break it)."""
        redactor = self._redactor()
        rest = {k: v for k, v in result.items() if k not in (field, "nextCursor")}
        if redactor is None or not any(isinstance(v, (dict, list, str)) for v in rest.values()):
            return
        digest = self.clean.digest(redactor, rest)
        if digest in self.clean:
            return
        found = await self._values(ex, redactor).inbound(rest, "result")
        result.update(rest)
        if not found["locations"]:
            self.clean.add(digest)
        if found["entities"]:
            before = (ex.redaction or {}).get("result")
            if before is not None:
                found = {**found, "locations": before["locations"] + found["locations"]}
            ex.redaction = {**(ex.redaction or {}), "result": found}

    async def _shown(self, ex: Exchange, field: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The items the policy lets this caller see: each one's use (stage "list"), and none
        whose texts carry an injection marker (stage "result"). The texts of all the items are
        judged in one decision first; only when it refuses is each judged alone (a marker in
        one item is a marker in all of them together: the joint decision misses none)."""
        kept: list[tuple[dict[str, Any], dict[str, Any]]] = []
        for item in items:
            part: dict[str, Any] = {}
            if field == "tools":
                part = {"tool": identity.tool(item["name"], None)}
            elif field == "resources":
                part = {"resource": {"uri": item["uri"]}}
            elif field == "prompts":
                part = {"prompt": {**identity.tool(item["name"], None), "kind": "prompt"}}
            if part and _denied(await self._decide(ex, "list", **part)):
                continue
            kept.append((item, {"tool": part["tool"]} if field == "tools" else {}))
        text = all_text([item for item, _ in kept])
        if not text or not _denied(await self._decide(ex, "result", result={"text": text})):
            return [item for item, _ in kept]
        shown = []
        for item, parts in kept:
            text = all_text(item)
            if not text or not _denied(await self._decide(ex, "result", result={"text": text}, **parts)):
                shown.append(item)
        return shown

    # -- initialize / server/discover ----------------------------------------------------
    def handshake_hook(self, ex: Exchange) -> AnswerHook:
        async def hook(answer: dict[str, Any]) -> dict[str, Any]:
            answer = filter_server_capabilities(answer)
            await self._redact(ex, answer)  # the whole result: the 2026-07-28 stamp is in _meta
            result = answer.get("result")
            if not isinstance(result, dict) or not self._policy_on():
                return answer
            meta = result.get("_meta")
            stamp = meta.get(SERVER_INFO_META) if isinstance(meta, dict) else None
            text = all_text([result.get("instructions"), result.get("serverInfo"), stamp])
            if not text:
                return answer
            try:
                verdict = await self._decide(ex, "result", result={"text": text})
                reasons = list(verdict.decision.deny) if _denied(verdict) else []
            except McpError as exc:  # texts no one could judge are withheld, not the session
                reasons = [exc.message]
            if reasons:
                plain = {"name": ex.server_name, "version": ""}
                result.pop("instructions", None)
                if "serverInfo" in result:
                    result["serverInfo"] = plain
                if stamp is not None:
                    assert isinstance(meta, dict)
                    meta[SERVER_INFO_META] = plain
                ex.reasons = ["instructions dropped: " + "; ".join(reasons)]
            return answer

        return hook

    # -- shared --------------------------------------------------------------------------
    def _values(self, ex: Exchange, redactor: Any) -> ValueRedaction:
        if not isinstance(ex.values, ValueRedaction):
            ex.values = ValueRedaction(redactor)
        return ex.values

    async def _redact(self, ex: Exchange, answer: dict[str, Any]) -> dict[str, Any]:
        """An answer of another shape (a JSON-RPC error quotes data too): redacted as it is."""
        redactor = self._redactor()
        for part in ("result", "error"):
            value = answer.get(part)
            if redactor is not None and isinstance(value, dict) and value:
                found = await self._values(ex, redactor).inbound(value, part)
                if found["entities"]:
                    ex.redaction = {**(ex.redaction or {}), part: found}
        return answer


def all_text(value: Any) -> str:
    """Every string of ``value``, member names and ``_meta`` included, as one policy text key."""
    texts: list[str] = []
    identity.collect_strings(value, texts, names=True)
    return text_key("\n".join(texts))


def _index(path: str, field: str) -> int:
    """The item index a summary path names (``result.tools[3].description`` → 3)."""
    head = f"result.{field}["
    return int(path[len(head) : path.index("]", len(head))]) if path.startswith(head) else -1


def _denied(verdict: Any) -> bool:
    return verdict is not None and verdict.decision is not None and bool(verdict.decision.deny)
