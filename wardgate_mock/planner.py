"""Deciding what the mock model answers: text, or which tools to call with which arguments.

The rules are documented in ``wardgate_mock.provider``'s docstring; this module implements
them on the API-independent ``Conversation`` and returns a ``Plan`` that the chat and
responses renderers turn into their own shapes.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

import orjson

from wardgate_mock.args import ArgumentFiller, Budget, TextFacts, fill_arguments
from wardgate_mock.conversation import Conversation, ToolSpec

#: Tool-call rounds after the last user message before the mock stops calling and answers.
MAX_TOOL_ROUNDS = 8
#: Characters of each tool result quoted in the summary answer.
RESULT_QUOTE_CHARS = 300

_WORD = re.compile(r"[a-z0-9]+")
_NAME_SPLIT = re.compile(r"[_\-.\s]+|(?<=[a-z])(?=[A-Z])")
_DIRECTIVE = "[[mock:"
_TOOL_DIRECTIVE = re.compile(r"tool=([\w.\-]+)\s*")
_STOP = frozenset(
    "a an the and or for with from into onto this that your you are was were will can could would should "
    "please tool tools function call calls data info information details value values return returns "
    "given using use make list item items new all any get set some about when what which who how".split()
)


@dataclass(slots=True)
class PlannedCall:
    id: str
    name: str
    arguments: str  # JSON text, as the APIs carry it


@dataclass(slots=True)
class Plan:
    text: str | None
    tool_calls: list[PlannedCall]
    finish_reason: str  # "stop" | "tool_calls" | "length"
    prompt_tokens: int
    completion_tokens: int
    seed: str  # hex digest of the conversation: the stem of every id in the answer

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(slots=True)
class MockOverrides:
    """Forced behaviour from outside the conversation (the fake upstream's test controls)."""

    usage: tuple[int, int] | None = None
    tool_calls: list[tuple[str, dict[str, Any] | str]] | None = None  # a str: the arguments verbatim
    text: str | None = None


@dataclass(slots=True)
class _Directives:
    text: str | None = None
    tools: list[tuple[str, dict[str, Any] | None]] = field(default_factory=list)


def parse_directives(text: str) -> tuple[str, _Directives]:
    """Strip ``[[mock:...]]`` directives from a message; return the clean text and them."""
    found = _Directives()
    if _DIRECTIVE not in text:
        return text, found
    clean: list[str] = []
    pos = 0
    while True:
        start = text.find(_DIRECTIVE, pos)
        if start < 0:
            clean.append(text[pos:])
            break
        clean.append(text[pos:start])
        cursor = start + len(_DIRECTIVE)
        tool = _TOOL_DIRECTIVE.match(text, cursor)
        args: dict[str, Any] | None = None
        if tool:
            cursor = tool.end()
            if text.startswith("args=", cursor):
                try:
                    value, cursor = json.JSONDecoder().raw_decode(text, cursor + 5)
                except json.JSONDecodeError:
                    value = None
                args = value if isinstance(value, dict) else None
        end = text.find("]]", cursor)
        if end < 0:  # unterminated: not a directive, keep it as text
            clean.append(text[start:])
            break
        if tool:
            found.tools.append((tool.group(1), args))
        elif text.startswith("text=", cursor):
            found.text = text[cursor + 5 : end].strip()
        pos = end + 2
    return " ".join(" ".join(clean).split()), found


def _stem(word: str) -> str:
    """A light stemmer ("refunded", "refunds" → "refund"; "issue", "issues" → "issu")."""
    n = len(word)
    if n < 5:
        return word
    last = word[-1]
    if last == "s":
        if word.endswith("ies") and n >= 6:
            word = word[:-3] + "y"
        elif word[-2] == "e" and n >= 6:
            word = word[:-2]
        elif word[-2] != "s":
            word = word[:-1]
    elif last == "g" and n >= 7 and word.endswith("ing"):
        word = word[:-3]
        if word[-1] == word[-2] and len(word) > 4:
            word = word[:-1]
    elif last == "d" and n >= 6 and word[-2] == "e":
        word = word[:-2]
        if word[-1] == word[-2] and len(word) > 4:
            word = word[:-1]
    if word[-1] == "e" and len(word) >= 5:
        word = word[:-1]
    return word


def _message_stems(text: str) -> dict[str, int]:
    """Stem → first position, for single words and adjacent pairs ("look up" → "lookup")."""
    words = _WORD.findall(text.lower())
    stems: dict[str, int] = {}
    for i, w in enumerate(words):
        stems.setdefault(_stem(w), i)
        if i + 1 < len(words):
            stems.setdefault(w + words[i + 1], i)  # joined names ("lookup") rarely carry suffixes
    return stems


def _significant(words: list[str], min_len: int) -> list[str]:
    return [_stem(w) for w in words if len(w) >= min_len and w not in _STOP]


def requested_tools(text: str, tools: list[ToolSpec]) -> list[ToolSpec]:
    """The tools the message asks for, in the order it mentions them.

    A tool is asked for when its name appears, or all the meaningful words of its name do
    ("look up order 7" → ``lookup_order``). Failing that, the tools matching the most words of
    their names ("transfer" → ``transfer_funds``), ties broken by words of their descriptions;
    failing that, the tools matching the most words of their descriptions.
    """
    if not tools or not text:
        return []
    lowered = text.lower()
    stems = _message_stems(text)
    full: list[tuple[int, ToolSpec]] = []
    partial: list[tuple[int, int, ToolSpec]] = []
    described: list[tuple[int, int, ToolSpec]] = []
    for tool in tools:
        at = lowered.find(tool.name.lower())
        if at >= 0:
            full.append((len(lowered[:at].split()), tool))
            continue
        name_words = _significant([w.lower() for w in _NAME_SPLIT.split(tool.name) if w], 2)
        hits = [stems[w] for w in name_words if w in stems]
        if hits and len(hits) == len(name_words):
            full.append((min(hits), tool))
            continue
        desc_words = set(_significant(_WORD.findall(tool.description.lower()), 4))
        desc_hits = [stems[w] for w in desc_words if w in stems]
        if hits:  # description words break ties between partial name matches
            partial.append((100 * len(hits) + len(desc_hits), min(hits), tool))
        elif desc_hits:
            described.append((len(desc_hits), min(desc_hits), tool))
    if full:
        return [t for _, t in sorted(full, key=lambda x: x[0])]
    for tier in (partial, described):
        if tier:
            best = max(score for score, _, _ in tier)
            return [t for _, _, t in sorted((x for x in tier if x[0] == best), key=lambda x: x[1])]
    return []


def _canonical(args: dict[str, Any] | str) -> bytes:
    if not isinstance(args, str):
        return orjson.dumps(args, option=orjson.OPT_SORT_KEYS)
    try:
        parsed = orjson.loads(args or "{}")
    except orjson.JSONDecodeError:
        return args.encode()
    return orjson.dumps(parsed, option=orjson.OPT_SORT_KEYS)


def plan(conv: Conversation, overrides: MockOverrides | None = None, salt: str = "") -> Plan:
    """Decide the answer to ``conv`` (see the rules in ``wardgate_mock.provider``)."""
    hasher = hashlib.blake2b(salt.encode(), digest_size=12)
    prompt_tokens = conv.tool_tokens
    last_user = -1
    for i, turn in enumerate(conv.turns):
        raw = turn.text.encode()
        hasher.update(raw)
        hasher.update(b"\x00")
        prompt_tokens += len(raw) // 4 + 1
        for c in turn.tool_calls:
            prompt_tokens += (len(c.name) + len(c.arguments)) // 4 + 1
        if turn.role == "user":
            last_user = i
    seed = hasher.hexdigest()
    user_text, directives = (
        parse_directives(conv.turns[last_user].text) if last_user >= 0 else ("", _Directives())
    )

    # What happened since the user last spoke: which tools were called, which results came back.
    names_by_id = {c.id: c.name for t in conv.turns if t.tool_calls for c in t.tool_calls}
    called: set[str] = set()
    called_exact: set[tuple[str, bytes]] = set()
    results: list[tuple[str, str]] = []
    rounds = 0
    for turn in conv.turns[last_user + 1 :]:
        if turn.tool_calls:
            rounds += 1
            for c in turn.tool_calls:
                called.add(c.name)
                called_exact.add((c.name, _canonical(c.arguments)))
        elif turn.role == "tool":
            results.append((names_by_id.get(turn.tool_call_id or "", "a tool"), turn.text))

    calls: list[tuple[str, dict[str, Any] | str | None]] = []  # str: verbatim arguments (tests)
    text: str | None = None
    if overrides and overrides.tool_calls:
        calls = [(name, args) for name, args in overrides.tool_calls]
    elif overrides and overrides.text is not None:
        text = overrides.text
    elif directives.tools:
        for name, args in directives.tools:
            done = (name, _canonical(args)) in called_exact if args is not None else name in called
            if not done:
                calls.append((name, args))
    elif conv.tool_choice == "function" and conv.forced_tool:
        calls = [(conv.forced_tool, None)]
    elif conv.tools and conv.tool_choice in ("auto", "required") and rounds < MAX_TOOL_ROUNDS:
        asked = requested_tools(user_text, conv.tools)
        pending = [t for t in asked if t.name not in called]
        if conv.tool_choice == "required" and not pending:
            pending = asked[:1] or conv.tools[:1]
        calls = [(t.name, None) for t in pending]
    if calls and not conv.parallel and not (overrides and overrides.tool_calls):
        calls = calls[:1]

    if calls:
        specs = {t.name: t for t in conv.tools}
        facts, budget = TextFacts(user_text), Budget()  # shared: one answer's calls read one message
        planned = []
        for index, (name, given) in enumerate(calls):
            if given is None:
                spec = specs.get(name)
                given = fill_arguments(spec.parameters, facts, budget) if spec else {}
            call_id = "call_" + hashlib.blake2b(f"{seed}:{index}:{name}".encode(), digest_size=12).hexdigest()
            arguments = given if isinstance(given, str) else orjson.dumps(given).decode()
            planned.append(PlannedCall(call_id, name, arguments))
        completion = sum((len(c.name) + len(c.arguments)) // 4 + 1 for c in planned)
        return _with_usage(Plan(None, planned, "tool_calls", prompt_tokens, completion, seed), overrides)

    if text is None:
        text = directives.text if directives.text is not None else _answer_text(user_text, results)
        if conv.output_schema is not None and directives.text is None:
            text = _structured(conv.output_schema, user_text, text)
    finish = "stop"
    completion = len(text.encode()) // 4 + 1
    if conv.max_output_tokens is not None and completion > conv.max_output_tokens:
        text = text.encode()[: conv.max_output_tokens * 4].decode("utf-8", "ignore")
        completion, finish = conv.max_output_tokens, "length"
    return _with_usage(Plan(text, [], finish, prompt_tokens, completion, seed), overrides)


def _answer_text(user_text: str, results: list[tuple[str, str]]) -> str:
    if results:
        parts = []
        for name, output in results:
            quoted = output if len(output) <= RESULT_QUOTE_CHARS else output[:RESULT_QUOTE_CHARS] + "…"
            parts.append(f"{name} returned: {quoted}")
        return "Done. " + " ".join(parts)
    return f"Echo: {user_text}" if user_text else "Hello! How can I help?"


def _structured(schema: dict[str, Any], user_text: str, text: str) -> str:
    if not schema:
        return orjson.dumps({"answer": text}).decode()
    value = ArgumentFiller(schema, TextFacts(user_text or text), Budget()).fill(schema)
    return orjson.dumps(value).decode()


def _with_usage(result: Plan, overrides: MockOverrides | None) -> Plan:
    if overrides and overrides.usage:
        result.prompt_tokens, result.completion_tokens = overrides.usage
    return result
