"""Apply actions to detected spans: the request side, whole answers, and the ``pii`` summary.

``Redactor`` is the per-process service (``Redaction.redactor``, built by the component);
``RedactionState`` is the per-call part (vault, effective actions, originals for a re-run,
stream channels), kept in the redaction area's own slot of the call (``STATE``); its vault is
also published as ``call.vault`` (approvals show reviewers the caller's real values).
"""

from __future__ import annotations

import logging
import operator
import os
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from gateway.call import Call
from gateway.errors import BadRequest, GatewayError, SensitiveDataBlocked
from gateway.redaction.anonymize import Steps, anonymize_steps, finish
from gateway.redaction.budget import LoopSlice, WorkBudget
from gateway.redaction.config import (
    Action,
    DirectionalAction,
    RedactionSettings,
    answer_action,
    check_actions,
    prompt_action,
    restores_into_tool_arguments,
)
from gateway.redaction.engine import RedactionEngine, Span, Spans
from gateway.redaction.fields import Treat
from gateway.redaction.gate import Gate
from gateway.redaction.headers import header_slots
from gateway.redaction.jsonview import JsonPieces, JsonView, UrlView, url_view
from gateway.redaction.locations import Slot, Walk, drop_logprobs, request_slots
from gateway.redaction.replace import replace_texts
from gateway.redaction.resent import replace_seen
from gateway.redaction.secrets import LABEL_REACH
from gateway.redaction.state import STATE, Actions, RedactionState, Summary
from gateway.redaction.stream import Channel, StreamRedactor, StreamRestorer
from gateway.redaction.vault import Vault, VaultOperator

log = logging.getLogger("wardgate.redaction")

_ENTITY = operator.attrgetter("entity")
_RANGE_ENTITY = operator.attrgetter("start", "end", "entity")


def _to_source(view: JsonView, spans: Spans) -> Spans:
    if view.decoded is view.source:
        return spans
    mapped = (Span(view.to_source(s.start), view.to_source(s.end), s.entity, s.score) for s in spans)
    return tuple(s for s in mapped if s.start < s.end)  # a span inside a LabelView's label


class Redactor:
    def __init__(self, settings: RedactionSettings, engine: RedactionEngine) -> None:
        self.settings = settings
        self.engine = engine
        self.operator = VaultOperator()
        if settings.hash_salt is not None:
            self._salt = settings.hash_salt.get_secret_value().encode()
        else:
            self._salt = os.urandom(32)
            if any(Action.HASH in (prompt_action(a), answer_action(a)) for a in settings.actions.values()):
                log.warning("redaction.hash_salt is not set: hashes are stable only within this process")
        self.holdback = max(settings.stream_holdback, engine.longest_term + 16)
        #: Released text kept as left context: every recognizer's label window fits in it.
        self.context = max(settings.stream_context, LABEL_REACH + 32)
        #: What a string in a field the table does not know gets (see fields.py).
        self.unknown = Treat.SCAN if settings.unknown_fields == "scan" else Treat.OPAQUE
        #: Stream windows with nothing that could start a match skip ``detect`` (gate.py).
        self.gate = Gate(engine.families, engine.chain)
        #: The longest window the gate is asked about: what a stream of one delta per read
        #: analyses (context + hold-back + step, and a delta). A longer one is a read of many
        #: deltas (or a flush of them): the gate costs 60-75% of its analysis there and rarely
        #: says "nothing" (bench/redaction_stream.py burst: 0.17-0.23 ms per 2 KB answer).
        self.gate_max = self.context + self.holdback + settings.stream_step + 64
        self._config_actions = self._actions(None)

    # -- actions ------------------------------------------------------------------------------

    def actions_for(self, call: Call) -> Actions:
        """Config actions, overridden by the policy decision's ``redact`` (``*`` = every type).

        A policy value is an action for both directions or ``{prompt, answer}``; an unknown
        value means ``redact`` (fail closed), with a warning.
        """
        policy = call.policy_redact
        if not policy:
            return self._config_actions  # shared, read-only: the common case costs nothing
        return self._actions(policy)

    def _actions(self, policy: dict[str, Any] | None) -> Actions:
        specs: dict[str, Action | DirectionalAction] = dict(self.settings.actions)
        if policy:
            default = _spec(policy.get("*"), "*")
            if default is not None:
                specs = dict.fromkeys(specs, default)
            for entity, value in policy.items():
                if entity == "*" or entity not in specs:
                    continue
                spec = _spec(value, entity)
                specs[entity] = spec if spec is not None else Action.REDACT
        prompt = {e: prompt_action(s) for e, s in specs.items()}
        if not self.settings.restore:
            prompt = {e: Action.REDACT if a is Action.RESTORE else a for e, a in prompt.items()}
        answer = {e: answer_action(s) for e, s in specs.items()}
        tools = frozenset(e for e, s in specs.items() if restores_into_tool_arguments(e, s))
        # What ``anonymize_steps`` decides per type on the request side (restorable: restore).
        placeholders = {
            e: a is Action.RESTORE for e, a in prompt.items() if a in (Action.REDACT, Action.RESTORE)
        }
        return Actions(
            MappingProxyType(prompt), MappingProxyType(answer), tools, MappingProxyType(placeholders)
        )

    def new_state(self, call: Call | None, policy_redact: dict[str, Any] | None = None) -> RedactionState:
        vault = Vault(self._salt, self.settings.mask_char, self.settings.mask_keep_last)
        policy = call.policy_redact if call is not None else policy_redact
        return RedactionState(vault=vault, actions=self._actions(policy) if policy else self._config_actions)

    def state(self, call: Call) -> RedactionState:
        state = STATE.get(call)
        if state is None:
            state = self._install(call, self.new_state(call))
        return state

    @staticmethod
    def _install(call: Call, state: RedactionState) -> RedactionState:
        call.vault = state.vault
        return STATE.put(call, state)

    # -- text ---------------------------------------------------------------------------------

    def apply(
        self,
        text: str,
        spans: Spans | list[Span],
        state: RedactionState,
        *,
        json: bool,
        output: bool,
        pieces: JsonPieces | None = None,
    ) -> str:
        """Replace the spans whose action changes text, with the answer's actions on the answer
        (where ``block`` redacts: it is too late to refuse, and nothing new becomes
        restorable). ``pieces``: the JSON lexer state of a stream channel, advanced even when
        nothing is replaced."""
        return finish(self.apply_steps(text, spans, state, json=json, output=output, pieces=pieces))

    def apply_steps(
        self,
        text: str,
        spans: Spans | list[Span],
        state: RedactionState,
        *,
        json: bool,
        output: bool,
        pieces: JsonPieces | None = None,
    ) -> Steps:
        """``apply`` as steps a request's ``LoopSlice`` can pause between (``anonymize_steps``)."""
        actions = state.actions.answer if output else state.actions.prompt
        # C loops over the spans (a dense text has thousands); filtered only when a type found
        # here is allowed.
        todo = list(map(_RANGE_ENTITY, spans))
        if any(actions.get(e, Action.ALLOW) is Action.ALLOW for e in set(map(_ENTITY, spans))):
            todo = [t for t in todo if actions.get(t[2], Action.ALLOW) is not Action.ALLOW]
        if not todo:
            if pieces is not None:
                pieces.regions(text)
            return text
        return (
            yield from anonymize_steps(
                text,
                todo,
                actions,
                state.vault,
                json=json,
                restorable=not output,
                operator=self.operator,
                pieces=pieces,
            )
        )

    def redact_output_text(
        self,
        text: str,
        state: RedactionState,
        *,
        json: bool,
        path: str,
        tool: bool = False,
        url: bool = False,
    ) -> str:
        """A complete text of the answer: redact what is new in it, then restore placeholders
        (into a tool call's arguments, ``tool``, only the types allowed there)."""
        if self.settings.scan_output:
            budget = self.answer_budget(state)
            if url:
                view = UrlView(url_view(text))
                spans = _to_source(view, self.analyze_or_refuse(view.decoded, budget=budget))
            else:
                spans = self.analyze_or_refuse(text, json=json, budget=budget)
            if spans:
                state.out_summary.add(path, spans)
                text = self.apply(text, spans, state, json=json, output=True)
        only = state.actions.tool_restore if tool else None
        text, n = state.vault.restore(text, json=json, only=only)
        state.restored += n
        return text

    def answer_budget(self, state: RedactionState) -> WorkBudget:
        """The answer's work budget: it records going over and never refuses (budget.py)."""
        if state.answer_budget is None:
            state.answer_budget = self.engine.budget("answer", refuse=False)
        return state.answer_budget

    def analyze_or_refuse(self, text: str, *, json: bool = False, budget: WorkBudget | None = None) -> Spans:
        """Cached analysis; JSON source is analysed decoded (see jsonview.py)."""
        try:
            if json:
                view = JsonView(text)
                return _to_source(view, self.engine.analyze(view.decoded, budget))
            return self.engine.analyze(text, budget)
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

    def new_channel(self, state: RedactionState, *, json: bool, path: str, tool: bool = False) -> Channel:
        """One text stream of the answer: redact what is new (if ``scan_output``), then restore."""
        stream_redactor = None
        if self.settings.scan_output:
            pieces = JsonPieces() if json else None

            def replace(text: str, spans: list[Span]) -> str:
                if spans:
                    state.out_summary.add(path, tuple(spans))
                return self.apply(text, spans, state, json=json, output=True, pieces=pieces)

            budget = self.answer_budget(state)

            def detect(text: str) -> Spans:
                # Windows overlap, so a stream's candidates are counted a little high.
                if json:
                    return self.detect_json_or_refuse(text, budget)
                return self.detect_or_refuse(text, budget)

            stream_redactor = StreamRedactor(
                detect,
                replace,
                holdback=self.holdback,
                context=self.context,
                max_pending=self.settings.stream_max_pending,
                step=self.settings.stream_step,
            )
        only = state.actions.tool_restore if tool else None
        restorer = StreamRestorer(state.vault, json=json, only=only) if state.vault.restorable else None
        channel = Channel(stream_redactor, restorer)
        state.channels[f"{path}#{len(state.channels)}"] = channel
        return channel

    def detect_json_or_refuse(self, text: str, budget: WorkBudget | None = None) -> Spans:
        view = JsonView(text)
        return _to_source(view, self.detect_or_refuse(view.decoded, budget))

    def detect_or_refuse(self, text: str, budget: WorkBudget | None = None) -> Spans:
        """Uncached detection for stream windows (each window is seen once). Most windows of
        an answer hold no trigger of any family: the gate answers those (up to ``gate_max``
        characters) at a fraction of the cost, with the same (empty) result and nothing to
        charge to ``budget``."""
        try:
            if len(text) <= self.gate_max and not self.gate.may_find(text):
                return ()
            return self.engine.detect(text, budget=budget)
        except GatewayError:
            raise
        except Exception as exc:
            return self.analysis_failed(exc)

    # -- request ------------------------------------------------------------------------------

    async def redact_request(self, call: Call) -> dict[str, Any]:
        """Scan every text of the request, refuse on ``block``, replace the rest in place. The
        leading cache hits (a resent conversation) are done in one pass (``replace_seen``)."""
        walk = request_slots(call.endpoint, call.body, self.unknown, self.settings.max_request_values)
        if call.headers:
            walk.slots.extend(header_slots(call.headers))
        self._refuse_unscannable(walk)
        state = self.state(call)
        summary = Summary(unscanned=walk.unscanned)
        budget = self.engine.budget()
        loop_slice = LoopSlice()
        changed_paths: list[str] = []
        done = await replace_seen(walk.slots, self.engine, state, summary, budget, loop_slice, changed_paths)
        slots = walk.slots[done:] if done else walk.slots
        results: list[Spans] = []
        if slots:
            views = [s.view() if s.json or s.url or s.label else None for s in slots]
            texts = [v.decoded if v is not None else s.text for s, v in zip(slots, views, strict=True)]
            try:
                results = await self.engine.analyze_many(texts, budget, loop_slice)
            except GatewayError:
                raise
            except Exception as exc:
                results = [self.analysis_failed(exc)] * len(slots)
            results = [_to_source(v, r) if v is not None else r for v, r in zip(views, results, strict=True)]
        return await self._apply_request(
            call, state, walk, slots, results, summary, loop_slice, changed_paths
        )

    async def _apply_request(
        self,
        call: Call,
        state: RedactionState,
        walk: Walk,
        slots: list[Slot],
        results: list[Spans],
        summary: Summary,
        loop_slice: LoopSlice,
        changed_paths: list[str],
    ) -> dict[str, Any]:
        """Summarise the texts after ``replace_seen``'s, refuse on ``block``, replace them."""
        counted: dict[int, Mapping[str, int]] = {}  # identical texts share one Spans object
        for slot, spans in zip(slots, results, strict=True):
            if spans:
                summary.add_text(slot.path, spans, counted)
        pii = call.pii = summary.request_pii(state.actions)
        prompt = state.actions.prompt
        blocked = sorted(e for e in summary.entities if prompt.get(e) is Action.BLOCK)
        if blocked:
            pii["blocked"] = blocked
            raise SensitiveDataBlocked(
                "The request contains sensitive data that may not be sent: " + ", ".join(blocked) + ".",
                extra={"entity_types": blocked},
            )

        def generic(text: str, spans: Spans, json: bool) -> Steps:
            return self.apply_steps(text, spans, state, json=json, output=False)

        if slots:
            changed_paths += await replace_texts(slots, results, state, loop_slice, generic)
        if walk.logprobs:
            drop_logprobs(walk, changed_paths)
        return pii

    def _refuse_unscannable(self, walk: Walk) -> None:
        """``opaque_fields`` / ``unknown_fields: refuse``: 400 naming the paths (never values)."""
        paths = []
        if self.settings.opaque_fields == "refuse":
            paths += walk.opaque
        if self.settings.unknown_fields == "refuse":
            paths += walk.unknown
        if paths:
            shown = ", ".join(paths[:5]) + (f" and {len(paths) - 5} more" if len(paths) > 5 else "")
            raise BadRequest(
                f"The request has fields redaction cannot scan: {shown}.",
                code="unscannable_content",
                param=paths[0],
            )

    async def reapply(self, call: Call) -> dict[str, Any]:
        """Re-run the request side after a policy set ``call.policy_redact``.

        The policy stage runs after ``redact_in`` (it decides on the ``pii`` summary), so when its
        decision carries ``redact`` it calls this: the body goes back to its original texts and
        is redacted again with the new actions (analysis results come from the cache).
        """
        old = STATE.get(call)
        if old is not None:
            for slot, original in reversed(old.originals):
                slot.set(original)
        self._install(call, self.new_state(call))
        return await self.redact_request(call)


def _spec(value: Any, entity: str) -> Action | DirectionalAction | None:
    if value is None:
        return None
    try:
        if isinstance(value, dict):
            check_actions({entity: value})
            return DirectionalAction.model_validate(value)
        return Action(value)
    except ValueError:
        log.warning("policy redact action for %s is not an action; using redact", entity)
        return Action.REDACT
