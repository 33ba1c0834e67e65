"""Apply actions to detected spans: the request side, whole answers, and the ``pii`` summary.

``Redactor`` is the per-process service (published as ``ctx.services["redaction"]``);
``RedactionState`` is the per-call part (vault, effective actions, originals for a re-run,
stream channels), kept in ``call.state["redaction"]``.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from gateway.call import Call
from gateway.errors import BadRequest, GatewayError, SensitiveDataBlocked
from gateway.redaction.config import Action, RedactionSettings
from gateway.redaction.engine import RedactionEngine, Span, Spans
from gateway.redaction.jsonview import JsonView
from gateway.redaction.locations import Slot, Walk, request_slots
from gateway.redaction.secrets import LABEL_REACH
from gateway.redaction.stream import Channel, StreamRedactor, StreamRestorer
from gateway.redaction.vault import Vault, VaultOperator, anonymize

log = logging.getLogger("wardgate.redaction")

STATE_KEY = "redaction"


def _to_source(view: JsonView, spans: Spans) -> Spans:
    if view.decoded is view.source:
        return spans
    return tuple(Span(view.to_source(s.start), view.to_source(s.end), s.entity, s.score) for s in spans)


@dataclass
class Summary:
    """Entity types, counts and where; never a value. Shared with policy and audit."""

    entities: Counter[str] = field(default_factory=Counter)
    locations: list[dict[str, Any]] = field(default_factory=list)
    unscanned: int = 0

    def add(self, path: str, spans: Spans) -> None:
        counts: dict[str, int] = {}
        for s in spans:
            counts[s.entity] = counts.get(s.entity, 0) + 1
        for entity in sorted(counts):
            n = counts[entity]
            self.entities[entity] += n
            self.locations.append({"path": path, "type": entity, "count": n})

    def as_dict(self) -> dict[str, Any]:
        return {
            "entities": dict(self.entities),
            "locations": list(self.locations),
            "unscanned": self.unscanned,
        }


@dataclass
class RedactionState:
    vault: Vault
    actions: dict[str, Action]
    #: (slot, text before redaction) of every slot changed, so a policy's ``redact`` can re-run.
    originals: list[tuple[Slot, str]] = field(default_factory=list)
    #: Stream channels of the answer (see events.py), keyed by where they are in the answer.
    channels: dict[str, Channel] = field(default_factory=dict)
    out_summary: Summary = field(default_factory=Summary)
    restored: int = 0
    #: The answer has been fully processed (summary and decision recorded).
    finished: bool = False

    def __repr__(self) -> str:
        return f"RedactionState({self.vault!r}, changed={len(self.originals)})"


class Redactor:
    def __init__(self, settings: RedactionSettings, engine: RedactionEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.operator = VaultOperator()
        if settings.hash_salt is not None:
            self._salt = settings.hash_salt.get_secret_value().encode()
        else:
            self._salt = os.urandom(32)
            if Action.HASH in settings.actions.values():
                log.warning("redaction.hash_salt is not set: hashes are stable only within this process")
        self.holdback = max(settings.stream_holdback, engine.longest_term + 16)
        #: Released text kept as left context: every recognizer's label window fits in it.
        self.context = max(settings.stream_context, LABEL_REACH + 32)

    # -- actions ------------------------------------------------------------------------------

    def actions_for(self, call: Call) -> dict[str, Action]:
        """Config actions, overridden by the policy decision's ``redact`` (``*`` = every type)."""
        actions = dict(self.settings.actions)
        policy = call.state.get("policy_redact")
        if isinstance(policy, dict) and policy:
            default = _action(policy.get("*"))
            if default is not None:
                actions = dict.fromkeys(actions, default)
            for entity, value in policy.items():
                action = _action(value)
                if entity != "*" and action is not None and entity in actions:
                    actions[entity] = action
                elif entity != "*" and action is None:
                    log.warning(
                        "policy redact action %r for %s is not an action; using redact", value, entity
                    )
                    if entity in actions:
                        actions[entity] = Action.REDACT
        if not self.settings.restore:
            actions = {e: Action.REDACT if a is Action.RESTORE else a for e, a in actions.items()}
        return actions

    def new_state(self, call: Call) -> RedactionState:
        vault = Vault(self._salt, self.settings.mask_char, self.settings.mask_keep_last)
        return RedactionState(vault=vault, actions=self.actions_for(call))

    def state(self, call: Call) -> RedactionState:
        state = call.state.get(STATE_KEY)
        if not isinstance(state, RedactionState):
            state = self.new_state(call)
            call.state[STATE_KEY] = state
        return state

    # -- text ---------------------------------------------------------------------------------

    def apply(
        self, text: str, spans: Spans | list[Span], state: RedactionState, *, json: bool, output: bool
    ) -> str:
        """Replace the spans whose action changes text. On the answer, ``block`` redacts (it is
        too late to refuse) and nothing new becomes restorable."""
        if not spans:
            return text
        actions = state.actions
        if output:
            actions = {e: Action.REDACT if a is Action.BLOCK else a for e, a in actions.items()}
        todo = [
            (s.start, s.end, s.entity)
            for s in spans
            if actions.get(s.entity, Action.ALLOW) is not Action.ALLOW
        ]
        if not todo:
            return text
        return anonymize(
            text, todo, actions, state.vault, json=json, restorable=not output, operator=self.operator
        )

    def redact_output_text(self, text: str, state: RedactionState, *, json: bool, path: str) -> str:
        """A complete text of the answer: redact what is new in it, then restore placeholders."""
        if self.settings.scan_output:
            spans = self.analyze_or_refuse(text, json=json)
            if spans:
                state.out_summary.add(path, spans)
                text = self.apply(text, spans, state, json=json, output=True)
        text, n = state.vault.restore(text, json=json)
        state.restored += n
        return text

    def analyze_or_refuse(self, text: str, *, json: bool = False) -> Spans:
        """Cached analysis; JSON source is analysed decoded (see jsonview.py)."""
        try:
            if json:
                view = JsonView(text)
                return _to_source(view, self.engine.analyze(view.decoded))
            return self.engine.analyze(text)
        except GatewayError:
            raise
        except Exception as exc:
            return self.analysis_failed(exc)

    def analysis_failed(self, exc: Exception) -> Spans:
        # Type only: an exception message may quote the text it choked on.
        log.error("redaction analysis failed: %s", type(exc).__name__)
        if self.settings.fail_closed:
            raise BadRequest(
                "The request content could not be scanned for sensitive data.", code="unscannable_content"
            ) from None
        return ()

    # -- streams ------------------------------------------------------------------------------

    def new_channel(self, state: RedactionState, *, json: bool, path: str) -> Channel:
        """One text stream of the answer: redact what is new (if ``scan_output``), then restore."""
        stream_redactor = None
        if self.settings.scan_output:

            def replace(text: str, spans: list[Span]) -> str:
                if spans:
                    state.out_summary.add(path, tuple(spans))
                return self.apply(text, spans, state, json=json, output=True)

            stream_redactor = StreamRedactor(
                self.detect_json_or_refuse if json else self.detect_or_refuse,
                replace,
                holdback=self.holdback,
                context=self.context,
                max_pending=self.settings.stream_max_pending,
            )
        restorer = StreamRestorer(state.vault, json=json) if state.vault.restorable else None
        channel = Channel(stream_redactor, restorer)
        state.channels[f"{path}#{len(state.channels)}"] = channel
        return channel

    def detect_json_or_refuse(self, text: str) -> Spans:
        view = JsonView(text)
        return _to_source(view, self.detect_or_refuse(view.decoded))

    def detect_or_refuse(self, text: str) -> Spans:
        """Uncached detection for stream windows (each window is seen once)."""
        try:
            return self.engine.detect(text)
        except GatewayError:
            raise
        except Exception as exc:
            return self.analysis_failed(exc)

    # -- request ------------------------------------------------------------------------------

    async def redact_request(self, call: Call) -> dict[str, Any]:
        """Scan every text of the request, refuse on ``block``, replace the rest in place."""
        walk = request_slots(call.endpoint, call.body)
        views = [JsonView(s.text) if s.json else None for s in walk.slots]
        texts = [v.decoded if v is not None else s.text for s, v in zip(walk.slots, views, strict=True)]
        try:
            results = await self.engine.analyze_many(texts)
        except GatewayError:
            raise
        except Exception as exc:
            results = [self.analysis_failed(exc)] * len(walk.slots)
        results = [_to_source(v, r) if v is not None else r for v, r in zip(views, results, strict=True)]
        state = self.state(call)
        return self._apply_request(call, state, walk, results)

    def _apply_request(
        self, call: Call, state: RedactionState, walk: Walk, results: list[Spans]
    ) -> dict[str, Any]:
        summary = Summary(unscanned=walk.unscanned)
        for slot, spans in zip(walk.slots, results, strict=True):
            if spans:
                summary.add(slot.path, spans)
        pii = summary.as_dict()
        pii["actions"] = {e: str(state.actions[e]) for e in summary.entities if e in state.actions}
        call.state["pii"] = pii
        blocked = sorted(e for e in summary.entities if state.actions.get(e) is Action.BLOCK)
        if blocked:
            pii["blocked"] = blocked
            raise SensitiveDataBlocked(
                "The request contains sensitive data that may not be sent: " + ", ".join(blocked) + ".",
                extra={"entity_types": blocked},
            )
        for slot, spans in zip(walk.slots, results, strict=True):
            if spans:
                original = slot.text
                changed = self.apply(original, spans, state, json=slot.json, output=False)
                if changed != original:
                    slot.set(changed)
                    state.originals.append((slot, original))
        return pii

    async def reapply(self, call: Call) -> dict[str, Any]:
        """Re-run the request side after a policy set ``call.state["policy_redact"]``.

        The policy stage runs after ``redact_in`` (it decides on the ``pii`` summary), so when its
        decision carries ``redact`` it calls this: the body goes back to its original texts and
        is redacted again with the new actions (analysis results come from the cache).
        """
        old = call.state.get(STATE_KEY)
        if isinstance(old, RedactionState):
            for slot, original in reversed(old.originals):
                slot.set(original)
        call.state[STATE_KEY] = self.new_state(call)
        return await self.redact_request(call)


def _action(value: Any) -> Action | None:
    try:
        return Action(value) if value is not None else None
    except ValueError:
        return None
