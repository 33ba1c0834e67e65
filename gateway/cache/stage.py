"""The ``cache`` stage: serve a stored answer instead of calling the provider, and store answers.

It sits after every request guard (authenticate, limits, redaction, request policy and its
approval, the re-price) and right before ``forward``. On a hit it sets ``call.response`` (the
pipeline then skips ``forward``): no provider call, the reservation is booked at zero
(``limits.booking``), and the answer still goes through every response stage, which depend
on the caller: ``redact_out`` restores *this* caller's placeholders from this call's vault,
``policy_response`` judges the answer, ``approval_response`` holds its tool calls if the
policy asks. ``call.replayed`` stays False on purpose: a hit is checked as if the model had
just said it.

In semantic mode (``semantic``) an exact miss asks the semantic index for the key of a
stored answer to a similar turn in the same context; that answer is served the same way
(``call.cache.similarity`` records how similar), and a miss's stored answer is indexed. A
semantic decision is served as exact while the index is off or its model is loading.

On a miss it captures the provider's answer as it came back (the raw body, or the raw stream
events, bounded by ``max_entry_bytes``: before any response stage edits it, so placeholders
stay placeholders), and ``cache_store`` (after ``settle``) stores it if the call finished
cleanly and the answer qualifies (``entry.refusal``, and no approval was asked, and the output
redaction found no value of the model's own in it).

``x-wardgate-cache``: ``hit``; ``miss`` (looked up, not found: stored if the answer qualifies);
``store`` (``Cache-Control: no-cache``: not looked up, stored: a read-through refresh);
``bypass`` (``no-store``, the policy said ``off``, embeddings, a request whose answer depends
on state only the provider has).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import orjson

from gateway.cache.config import CacheSettings
from gateway.cache.entry import Entry, assemble_events, hit_response, refusal
from gateway.cache.key import CacheKey, cache_key, provider_state, scope_id
from gateway.cache.metrics import CacheMetrics
from gateway.cache.semantic import SemanticIndex
from gateway.cache.store import CacheStore, CacheStoreError
from gateway.call import Call, Endpoint, ModelResponse
from gateway.callstate import CacheDirective, CacheOutcome, Slot
from gateway.pipeline import Stage
from gateway.sse import SSEEvent

log = logging.getLogger("wardgate.cache")

HEADER = "x-wardgate-cache"


@dataclass(slots=True)
class _Capture:
    """A miss's answer as the provider sent it, until the call finishes."""

    key: CacheKey
    ttl_s: float
    body: bytes | None = None
    events: list[bytes] = field(default_factory=list)
    size: int = 0
    over: bool = False


_CAPTURE: Slot[_Capture] = Slot("cache.capture")


def _cache_control(value: str | None) -> frozenset[str]:
    if not value:
        return frozenset()
    return frozenset(part.strip().split("=", 1)[0].lower() for part in value.split(","))


class CacheStage(Stage):
    name: ClassVar[str] = "cache"
    #: Its finish hook only decides and defers the store: it never turns an answer into an error.
    gates_answer = False

    def __init__(
        self,
        settings: CacheSettings,
        store: CacheStore,
        metrics: CacheMetrics,
        semantic: SemanticIndex | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.store = store
        self.metrics = metrics
        self.semantic = semantic
        self.clock = clock
        self._default = CacheDirective(settings.default_mode, None, settings.default_scope)
        self._max_entry = settings.max_entry_bytes

    # -- request: look up --------------------------------------------------------------------

    def _bypass(self, call: Call, mode: str, scope: str | None, reason: str) -> None:
        call.cache = CacheOutcome("bypass", mode, scope, reason)
        call.response_headers[HEADER] = "bypass"
        principal = call.principal
        self.metrics.looked_up("bypass", principal.team if principal else "", call.model)

    async def on_request(self, call: Call) -> None:
        directive = call.cache_directive or self._default
        mode, scope_name = directive.mode, directive.scope
        if mode == "off":
            return self._bypass(call, mode, None, "off")
        if call.endpoint is Endpoint.EMBEDDINGS:
            return self._bypass(call, mode, scope_name, "endpoint")
        reason = None
        threshold = None
        if mode == "semantic":
            if self.semantic is None or not self.semantic.ready():
                self.metrics.semantic_unavailable.inc()
                mode = "exact"
                reason = "semantic_unavailable" if self.semantic is None else "semantic_loading"
            else:
                threshold = directive.threshold or self.settings.semantic_threshold
        control = _cache_control(call.headers.get("cache-control"))
        if "no-store" in control:
            return self._bypass(call, mode, scope_name, "no_store")
        state = provider_state(call.body)
        if state is not None:
            return self._bypass(call, mode, scope_name, f"provider_state:{state}")
        scope = scope_id(call, scope_name)
        if scope is None:
            return self._bypass(call, mode, scope_name, "no_principal")
        try:
            key = cache_key(call, scope)
        except (TypeError, orjson.JSONEncodeError):  # a value orjson cannot write back
            return self._bypass(call, mode, scope_name, "unhashable")
        ttl = min(directive.ttl_s or self.settings.default_ttl_s, self.settings.max_ttl_s)
        team = call.principal.team if call.principal is not None else ""
        status = "store"
        if "no-cache" not in control:
            entry, similarity = await self._lookup(call, key, threshold)
            if entry is not None:
                self._hit(call, entry, mode, scope_name, reason, team, key.model)
                if call.cache is not None:
                    call.cache.similarity = similarity
                return
            status = "miss"
        call.cache = CacheOutcome(status, mode, scope_name, reason)
        call.response_headers[HEADER] = status
        self.metrics.looked_up(status, team, key.model)
        _CAPTURE.put(call, _Capture(key, ttl))

    async def _lookup(
        self, call: Call, key: CacheKey, threshold: float | None
    ) -> tuple[Entry | None, float | None]:
        """An exact hit, else (semantic mode) the stored answer of the nearest similar turn
        with its similarity."""
        entry = await self._get(key)
        if entry is not None:
            return entry, (1.0 if threshold is not None else None)
        if threshold is None or self.semantic is None:
            return None, None
        near = await self.semantic.nearest(call, key, threshold)
        if near is None or near.key.scope != key.scope or near.key.model != key.model:
            return None, None
        found = await self._get(near.key)
        return (found, near.similarity) if found is not None else (None, None)

    async def _get(self, key: CacheKey) -> Entry | None:
        try:
            raw = await self.store.get(key)
        except CacheStoreError:
            self.metrics.error(self.store.name, "get")
            return None
        return Entry.decode(raw) if raw else None

    def _hit(
        self, call: Call, entry: Entry, mode: str, scope: str, reason: str | None, team: str, model: str
    ) -> None:
        saved = entry.cost_usd
        call.cache = CacheOutcome("hit", mode, scope, reason, saved_usd=saved)
        call.response_headers[HEADER] = "hit"
        call.upstream_model = entry.model
        self.metrics.looked_up("hit", team, model)
        if saved:
            self.metrics.saved_usd(team, model, saved)
        call.response = hit_response(call, entry)

    # -- response: capture a miss's answer ---------------------------------------------------

    async def on_response(self, call: Call, response: ModelResponse) -> None:
        capture = _CAPTURE.get(call)
        if capture is None:
            return
        if response.status != 200:
            capture.over = True
            return
        body = response.body or (orjson.dumps(response.json) if response.json is not None else b"")
        if len(body) > self._max_entry:
            capture.over = True
        else:
            capture.body = body

    async def on_chunk(self, call: Call, event: SSEEvent) -> Sequence[SSEEvent]:
        capture = _CAPTURE.get(call)
        if capture is not None and not capture.over:
            capture.size += len(event.raw)
            if capture.size > self._max_entry:
                capture.over = True
                capture.events = []
            else:
                capture.events.append(event.raw)
        return (event,)


class CacheStoreStage(Stage):
    """``cache_store``: stores a miss's answer once the call has finished cleanly.

    It runs after ``settle`` (so the entry records what the call was booked at: the saving a
    later hit reports) and before ``audit`` (so the event says whether it was stored). The
    memory store is written right here, before the next call can look; Redis is written
    after the answer went out (``call.deferred``), off the answer's path."""

    name: ClassVar[str] = "cache_store"
    gates_answer = False

    def __init__(self, lookup: CacheStage) -> None:
        self.lookup = lookup
        self.store = lookup.store
        self.metrics = lookup.metrics
        self._max_entry = lookup.settings.max_entry_bytes
        self._clock = lookup.clock

    def _refusal(self, call: Call, capture: _Capture) -> str | None:
        if call.error is not None or call.client_disconnected:
            return "failed"
        if capture.over:
            return "too_large"
        if call.approval_ask is not None or call.approval is not None or call.replayed:
            return "approval"
        pii = call.pii or {}
        found = (pii.get("response") or {}).get("entities") if isinstance(pii, dict) else None
        if found:
            return "answer_pii"  # values the model wrote, not the caller's: never stored
        return None

    async def on_finish(self, call: Call) -> None:
        capture = _CAPTURE.get(call)
        if capture is None:
            return
        _CAPTURE.clear(call)
        why = self._refusal(call, capture)
        answer = None
        if why is None:
            if capture.body is not None:
                try:
                    answer = orjson.loads(capture.body)
                except orjson.JSONDecodeError:
                    answer = None
            elif capture.events:
                answer = assemble_events(call.endpoint, capture.events)
            why = refusal(call.endpoint, answer)
        if why is not None or not isinstance(answer, dict):
            self.metrics.stored(why or "error")
            return
        if self.store.name == "memory":
            await self._put(call, capture, answer)
        else:
            call.deferred.append(self._put(call, capture, answer))

    async def _put(self, call: Call, capture: _Capture, answer: dict[str, object]) -> None:
        """Store the entry with what the call was booked at."""
        entry = Entry(answer, call.upstream_model, call.cost_usd, self._clock())
        value = entry.encode()
        if len(value) > self._max_entry:
            self.metrics.stored("too_large")
            return
        try:
            await self.store.put(capture.key, value, capture.ttl_s)
        except CacheStoreError:
            self.metrics.error(self.store.name, "put")
            self.metrics.stored("store_error")
            return
        self.metrics.stored("stored")
        if call.cache is not None:
            call.cache.stored = True
        semantic = self.lookup.semantic
        if semantic is not None and call.cache is not None and call.cache.mode == "semantic":
            await semantic.added(call, capture.key, capture.ttl_s)
