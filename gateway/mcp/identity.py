"""The MCP policy input: the same tool identity as the model-call phases, and fingerprints.

A tool is ``{name, name_key, kind: "mcp", arguments}``: ``name_key`` is the key a rule compares
(``gateway.policy.textkey``: look-alikes, invisible characters and case folded), so
``Transfer_Funds``, ``transfer_funds `` and ``trаnsfer_funds`` (Cyrillic ``а``) are one tool
to a rule, as they are for a tool call a model proposes; ``arguments`` have their numbers in
the one form both engines compare alike (``gateway.policy.numbers``), read from the body's
exact text when it holds a number JSON parsers round.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from gateway.mcp.exchange import Exchange
from gateway.policy.numbers import normalise_numbers
from gateway.policy.textkey import name_key, text_key

INPUT_VERSION = 1


def exact_arguments(body: bytes, arguments: Any) -> Any:
    """``arguments`` with every number as the policy reads it (exact when the body had long ones)."""
    if _has_long_number(body):
        try:
            doc = json.loads(body, parse_float=Decimal, parse_constant=str)
            params = doc.get("params") if isinstance(doc, dict) else None
            exact = params.get("arguments") if isinstance(params, dict) else None
            if exact is not None:
                return normalise_numbers(exact)
        except ValueError:
            pass
    return normalise_numbers(arguments)


#: 16+ digits in a row, or an exponent after a digit: a number orjson may have rounded.
_LONG_NUMBER = re.compile(rb"[0-9]{16}|[0-9][eE]")


def _has_long_number(body: bytes) -> bool:
    """Whether ``body`` may hold a number orjson rounds (one regex scan, C speed: the body of
    every tools/call goes through it)."""
    return _LONG_NUMBER.search(body) is not None


_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


_TIME: list[Any] = [0, {}]


def time_view() -> dict[str, Any]:
    """``input.time`` as the model-call phases give it (built once per second)."""
    second = int(time.time())
    if _TIME[0] != second:
        now = datetime.fromtimestamp(second, UTC)
        view = {
            "now": now.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "weekday": _WEEKDAYS[now.weekday()],
            "hour": now.hour,
        }
        _TIME[:] = [second, view]
    return dict(_TIME[1])


def tool(name: str, arguments: Any) -> dict[str, Any]:
    return {"name": name, "name_key": name_key(name), "kind": "mcp", "arguments": arguments}


def document(ex: Exchange, stage: str, **parts: Any) -> dict[str, Any]:
    """The ``wardgate.mcp`` input for one stage of ``ex`` (``parts``: tool, resource, prompt, result)."""
    assert ex.message is not None
    mcp: dict[str, Any] = {
        "server": ex.server_name,
        "method": ex.message.method,
        "stage": stage,
        "call_id": str(ex.message.id) if ex.message.id is not None else "",
        **parts,
    }
    return {
        "version": INPUT_VERSION,
        "principal": ex.principal.as_input() if ex.principal is not None else None,
        "agent": {"id": ex.agent_id, "run_id": ex.run_id, "parent_run_id": ex.parent_run_id},
        "pii": ex.redaction.get("args") if ex.redaction else None,
        "time": time_view(),
        "mcp": mcp,
    }


#: What an answer's text key leaves out: envelope members, not text the model reads.
_NOT_RESULT_TEXT = frozenset({"_meta", "mimeType", "type", "uri", "annotations"})


def result_text(value: Any) -> str:
    """Every text of an answer (content parts, structured content, resource or prompt texts) as one key."""
    texts: list[str] = []
    collect_strings(value, texts, skip=_NOT_RESULT_TEXT)
    return text_key("\n".join(texts))


def collect_strings(
    value: Any, out: list[str], *, skip: frozenset[str] = frozenset(), names: bool = False
) -> None:
    """Append every string of ``value`` to ``out`` (members named in ``skip`` left out; with
    ``names``, each member's name before its value)."""
    if isinstance(value, str):
        out.append(value)
    elif isinstance(value, dict):
        for key, item in value.items():
            if key not in skip:
                if names:
                    out.append(str(key))
                collect_strings(item, out, skip=skip, names=names)
    elif isinstance(value, list):
        for item in value:
            collect_strings(item, out, skip=skip, names=names)


def fingerprint(server: str, name: str, arguments: Any) -> str:
    """What a re-send must match to redeem an approval: server, tool key and arguments."""
    doc = {"server": server, "tool": name_key(name), "arguments": arguments}
    return hashlib.sha256(orjson.dumps(doc, option=orjson.OPT_SORT_KEYS)).hexdigest()
