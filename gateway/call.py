"""The per-request context every stage reads and writes.

A ``Call`` is created by the HTTP layer for one OpenAI-compatible request and flows through
the pipeline. Stages communicate only through it: what the caller is (``principal``), what
was asked (``body``), what was decided (``decisions``), what came back (``response``) and
what it cost (``usage``, ``cost``). What one area tells another is a typed field with one
writer (``gateway.callstate``); what a stage keeps for itself goes in a ``Slot`` it owns.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from gateway.callstate import (
    ApprovalAsk,
    ApprovalOutcome,
    Budget,
    CacheDirective,
    CacheOutcome,
    Concealer,
    LimitsView,
    RunTally,
    Slot,
    StreamAnswer,
)
from gateway.sse import EventBatches


class Endpoint(StrEnum):
    CHAT = "chat.completions"
    RESPONSES = "responses"
    EMBEDDINGS = "embeddings"
    #: A tool call an agent makes through the MCP gateway (gateway/mcp): never a model's
    #: endpoint, only what approvals and the audit record name it by.
    MCP = "mcp"

    @property
    def upstream_path(self) -> str:
        return _UPSTREAM_PATHS[self]


_UPSTREAM_PATHS = {
    Endpoint.CHAT: "/chat/completions",
    Endpoint.RESPONSES: "/responses",
    Endpoint.EMBEDDINGS: "/embeddings",
    Endpoint.MCP: "",
}


@dataclass(slots=True, frozen=True)
class Principal:
    """Who is calling: resolved from a virtual key. Never holds the key itself."""

    key_id: str
    team: str
    user: str | None = None
    roles: tuple[str, ...] = ()
    models: tuple[str, ...] = ("*",)
    tags: dict[str, str] = field(default_factory=dict)
    limits: dict[str, Any] = field(default_factory=dict)
    budgets: dict[str, Any] = field(default_factory=dict)

    def as_input(self) -> dict[str, Any]:
        """The principal as the policy input and the audit record see it."""
        return {
            "key_id": self.key_id,
            "team": self.team,
            "user": self.user,
            "roles": list(self.roles),
            "tags": dict(self.tags),
        }


@dataclass(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    #: The provider sent a usage object whose counts are not whole numbers (strings, fractions,
    #: booleans): the counts above are 0 and the budget books the reservation instead.
    malformed: bool = False

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @classmethod
    def from_openai(cls, usage: Any) -> Usage | None:
        """Reads both the chat-completions and the responses-API usage shapes."""
        if not isinstance(usage, dict):
            return None
        inp = usage.get("prompt_tokens", usage.get("input_tokens", 0)) or 0
        out = usage.get("completion_tokens", usage.get("output_tokens", 0)) or 0
        details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details") or {}
        cached = (details.get("cached_tokens", 0) if isinstance(details, dict) else 0) or 0
        # The usual answer, without a call per count (``type`` is exact: a bool is no count).
        if type(inp) is int and type(out) is int and type(cached) is int:
            return cls(inp, out, cached)
        counts = [_whole(v) for v in (inp, out, cached)]
        if any(c is None for c in counts):
            return cls(malformed=True)
        return cls(*counts)  # type: ignore[arg-type]  # the check above excluded None


def _whole(value: Any) -> int | None:
    """A token count as the provider sent it, if it is a whole number (negative ones included:
    the budget judges those); ``None`` for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


@dataclass(slots=True)
class ModelResponse:
    """What the provider answered: a JSON body, or a stream of SSE events (a batch per read).

    ``json`` is the parsed body of a non-stream answer; stages edit it in place and set
    ``dirty`` so the HTTP layer re-serialises it (otherwise ``body`` goes out byte-for-byte).
    """

    status: int
    headers: dict[str, str]
    body: bytes = b""
    json: Any = None
    events: EventBatches | None = None
    dirty: bool = False
    deployment: str | None = None

    @property
    def is_stream(self) -> bool:
        return self.events is not None


@dataclass(slots=True)
class Decision:
    """One verdict of one guard, kept for headers, audit and the policy input of later phases."""

    stage: str
    phase: str  # "request" | "response"
    outcome: str  # "allow" | "deny" | "approval" | "error" ...
    reasons: list[str] = field(default_factory=list)
    revision: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Call:
    request_id: str
    endpoint: Endpoint
    body: dict[str, Any]
    headers: dict[str, str]
    stream: bool = False
    model: str = ""
    principal: Principal | None = None
    agent_id: str | None = None
    run_id: str | None = None
    parent_run_id: str | None = None
    client_wants_usage: bool = False
    decisions: list[Decision] = field(default_factory=list)
    response: ModelResponse | None = None
    usage: Usage | None = None
    cost_usd: float | None = None
    error: Exception | None = None
    response_headers: dict[str, str] = field(default_factory=dict)
    deployment: str | None = None
    upstream_model: str | None = None
    upstream_status: int | None = None
    retries: int = 0
    #: Every try of a deployment (``providers.base.Attempt``), failed calls included.
    upstream_attempts: list[Any] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    # -- what one area tells the others (gateway.callstate; one writer each) --------------
    #: Writer: limits. Estimate, reservation amount, store, what was settled and why.
    limits: LimitsView | None = None
    #: Writer: limits. Cost estimate and budgets left (policy ``input.cost``, metrics).
    budget: Budget | None = None
    #: Writer: limits. The agent run's tally (policy ``input.run``); None without a run id.
    run: RunTally | None = None
    #: Writer: redaction. What was found: ``{"entities": {TYPE: n}, "locations": [...],
    #: "unscanned": n, "actions"?, "blocked"?}`` (policy ``input.pii``, audit).
    pii: dict[str, Any] | None = None
    #: Writer: redaction. The call's vault (placeholders <-> caller's values), for approvals
    #: to show reviewers the real values.
    vault: Concealer | None = None
    #: Writer: policy (request). Entity -> action overrides of the decision's ``redact``.
    policy_redact: dict[str, Any] | None = None
    #: Writer: policy (request). The model a policy routed the call to.
    routed_model: str | None = None
    #: Writer: policy (request). The decision asked for content capture (``capture: true``);
    #: audit stores the redacted messages and answer, or records why it refused to.
    capture: bool = False
    #: Writer: policy (either phase). The approval the decision asked for.
    approval_ask: ApprovalAsk | None = None
    #: Writer: approvals. The approval this call created, joined or redeemed.
    approval: ApprovalOutcome | None = None
    #: Writer: policy (response, streams). The streamed answer's tool calls and finish reason.
    streamed: StreamAnswer | None = None
    #: Writer: approvals. The answer did not come from the model in this call (a stored or
    #: synthesized answer): stages that check or charge what the model said skip it.
    replayed: bool = False
    #: Writer: redaction (request). A stage reads the streamed answer's lines itself, so the
    #: provider may hand each read over as ``sse.RawRead`` (event objects made only if asked).
    raw_reads: bool = False
    #: Writer: policy (request). The decision's ``cache`` (mode, ttl, scope).
    cache_directive: CacheDirective | None = None
    #: Writer: the cache stage. Hit / miss / bypass / store, and what a hit saved.
    cache: CacheOutcome | None = None
    #: Stage-private values, keyed by the ``Slot`` objects their modules own.
    slots: dict[Slot[Any], Any] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    started_wall: float = field(default_factory=time.time)
    first_byte_sent: bool = False
    client_disconnected: bool = False
    #: Set by the HTTP layer once the body is read (until a stream's relay, which has its own
    #: guard): awaiting it raises ``ClientDisconnected`` when the client goes away. A stage that
    #: waits long for something else (an approval hold) races it, so it stops waiting for a
    #: client that is gone. None outside a live HTTP request.
    until_disconnect: Callable[[], Awaitable[None]] | None = None
    traceparent: str | None = None
    #: What finish hooks left to wait for after the answer (a store's reply to a command they
    #: already issued); ``Pipeline.after_answer`` awaits it.
    deferred: list[Awaitable[None]] = field(default_factory=list)
