"""The plain ``wardgate.mcp`` decisions without the engine: a proven allow fast path.

Why: an MCP ``tools/call`` asks the policy twice (stage ``call``, stage ``result``), and each
regorus evaluation of the shipped ``rego/mcp.rego`` costs ~100-150 µs, about a third of the
gateway's CPU per call. Most calls are plain: a listed tool that no tool rule, high-stakes
rule or injection marker concerns, and for those the shipped policy's answer is the empty
allow. This module gives that answer from the revision's served data, and **only** that one:
anything else (a deny, an approval, a tool the allow list names by glob, a listed kind rule,
an unknown server, a non-ASCII name) returns ``None`` and the engine decides as before.

It is exact only for the shipped rules, so it is built only when the modules that can add to
``data.wardgate.mcp`` or ``data.wardgate.lib`` are the shipped ones, byte for byte
(``SHIPPED``: sha256 of ``rego/mcp.rego`` and ``rego/lib.rego``; no other module in package
``wardgate``, ``wardgate.mcp`` or ``wardgate.lib``, where ref-head rules could add reasons),
and the data file at ``data.wardgate.mcp`` holds nothing but ``servers``. An edited policy
simply runs on the engine. Why each answer equals the engine's, rule by rule of mcp.rego:

* ``deny`` "no entry": the server is a key of ``derived.mcp_servers`` holding an object
  (whose tool allow list has no glob: the engine tries every glob, and refuses a malformed one);
* stage ``call``/``list`` (methods ``tools/call``, ``tools/list``): ``_before`` is empty when
  the name_key is an exact allow-list key (``_tool_allowed``), starts with none of
  ``derived.tool_prefixes`` (the first set of ``lib.tool_denials`` needs such a prefix), its
  kind has no ``derived.kind_rules`` entry (the second set), and it is not a
  ``derived.high_stakes`` key (no ``_rule``: no deny, no ``require_approval``); the resource
  and prompt rules need other methods;
* stage ``result``: ``_after`` needs ``contains(text, marker)`` for a marker of
  ``derived.injection_markers``: a text containing none gets no reason. (The engine sees the
  text after JSON encoding, where a lone surrogate becomes U+FFFD: markers holding U+FFFD
  switch this stage off, so a marker can match the encoded text only where it matches this one.)

``tests/policy/test_policy_mcp_fastpath.py`` holds ``SHIPPED`` to the files, and checks on
generated policies and inputs that every answer given here is the engine's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from gateway.policy.source import packages

#: sha256 of the shipped modules this fast path is proven for (package → file text hash).
SHIPPED = {
    "wardgate.mcp": "41b0df03344c4fd1daac98890052b8df227d266e1ad1850235b08a1d908fec1f",
    "wardgate.lib": "b8edbb10e22b5208dd398ccfca8e810c91035b90884eeeee67c16e3e1e6e3812",
}
#: Packages whose rules can reach ``data.wardgate.mcp.decision`` (``wardgate``: ref heads).
_GUARDED = frozenset({"wardgate", *SHIPPED})
#: Markers beyond this (in all) may make the engine's one regex of them too large to compile
#: (an error, so a refusal), which this path would not see: the engine decides then.
_MAX_MARKER_CHARS = 65_536
_TOOL_METHODS = frozenset({"tools/call", "tools/list"})
#: The shipped decision when no rule fires (``decision`` in rego/mcp.rego).
ALLOW: dict[str, Any] = {
    "allow": True,
    "deny": [],
    "require_approval": [],
    "redact": {},
    "route": {},
    "limits": {},
    "tags": {},
}


class McpFastPath:
    """The allow answers of one revision (built by ``build``)."""

    __slots__ = ("_high_stakes", "_kind_rules", "_markers", "_prefixes", "_servers")

    def __init__(
        self,
        servers: dict[str, frozenset[str]],
        prefixes: tuple[str, ...],
        kind_rules: frozenset[str],
        high_stakes: frozenset[str],
        markers: tuple[str, ...] | None,
    ) -> None:
        #: Server → the exact (glob-free) tool keys of its allow list.
        self._servers = servers
        self._prefixes = prefixes
        self._kind_rules = kind_rules
        self._high_stakes = high_stakes
        #: None: the result stage always asks the engine.
        self._markers = markers

    def decide(self, doc: Mapping[str, Any]) -> dict[str, Any] | None:
        """``ALLOW`` when the shipped policy certainly allows ``doc``; None: ask the engine."""
        mcp = doc.get("mcp")
        if not isinstance(mcp, dict):
            return None
        tools = self._servers.get(mcp.get("server"))  # type: ignore[arg-type]
        if tools is None:
            return None
        stage = mcp.get("stage")
        if stage == "result":
            result = mcp.get("result")
            text = result.get("text") if isinstance(result, dict) else None
            if self._markers is None or not isinstance(text, str):
                return None
            return None if any(m in text for m in self._markers) else ALLOW
        if stage not in ("call", "list") or mcp.get("method") not in _TOOL_METHODS:
            return None
        tool = mcp.get("tool")
        if not isinstance(tool, dict):
            return None
        key, kind = tool.get("name_key"), tool.get("kind")
        if not isinstance(key, str) or not key.isascii() or key not in tools:
            return None
        if not isinstance(kind, str) or kind in self._kind_rules or key in self._high_stakes:
            return None
        if key.startswith(self._prefixes):
            return None
        return ALLOW


def build(modules: Mapping[str, str], data: Mapping[str, Any]) -> McpFastPath | None:
    """The fast path for a served set (derived data materialised), or None when the set is
    not the one it is proven for."""
    found: dict[str, int] = {}
    for name, package in packages(modules).items():
        if package not in _GUARDED:
            continue
        digest = hashlib.sha256(modules[name].encode()).hexdigest()
        if SHIPPED.get(package) != digest:
            return None
        found[package] = found.get(package, 0) + 1
    if found != dict.fromkeys(SHIPPED, 1):
        return None
    wardgate = data.get("wardgate")
    if not isinstance(wardgate, dict):
        return None
    mcp_data = wardgate.get("mcp", {})
    if not isinstance(mcp_data, dict) or not set(mcp_data) <= {"servers"}:
        return None
    derived = wardgate.get("derived")
    if not isinstance(derived, dict):
        return None
    return _from_derived(derived)


def _from_derived(derived: dict[str, Any]) -> McpFastPath | None:
    servers_doc = derived.get("mcp_servers")
    prefixes = derived.get("tool_prefixes")
    kind_rules = derived.get("kind_rules", {})
    high_stakes = derived.get("high_stakes", {})
    if not isinstance(servers_doc, dict) or not isinstance(kind_rules, dict):
        return None
    if not isinstance(high_stakes, dict):
        return None
    if not isinstance(prefixes, list) or not all(isinstance(p, str) for p in prefixes):
        return None
    servers: dict[str, frozenset[str]] = {}
    for name, lists in servers_doc.items():
        tools = lists.get("tools") if isinstance(lists, dict) else None
        if (
            not isinstance(tools, dict)
            or tools.get("globs") != []
            or not isinstance(tools.get("exact"), dict)
        ):
            continue  # "no entry", or a glob the engine matches (and may refuse as malformed)
        servers[name] = frozenset(k for k, v in tools["exact"].items() if v is True and k.isascii())
    markers_doc = derived.get("injection_markers", [])
    markers: tuple[str, ...] | None = None
    if (
        isinstance(markers_doc, list)
        and all(isinstance(m, str) and "\ufffd" not in m for m in markers_doc)
        and sum(len(m) for m in markers_doc) <= _MAX_MARKER_CHARS
    ):
        markers = tuple(markers_doc)
    return McpFastPath(servers, tuple(prefixes), frozenset(kind_rules), frozenset(high_stakes), markers)
