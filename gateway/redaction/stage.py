"""The two pipeline stages: ``redact_in`` (before policy) and ``redact_out`` (on the answer).

``redact_in`` runs before the policy stage so policies decide on what would actually leave
the gateway, and on the ``pii`` summary (types, counts, paths; never values). ``redact_out``
runs right after ``forward``: it redacts what is new in the answer, then restores the
caller's own placeholders, for whole answers and for streams.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from gateway.call import Call, Decision, Endpoint, ModelResponse
from gateway.callstate import Slot
from gateway.errors import SensitiveDataBlocked
from gateway.pipeline import Stage
from gateway.redaction.chat_events import ChatRewriter
from gateway.redaction.events import WholeText, rewrite_body
from gateway.redaction.jsonview import is_json
from gateway.redaction.metrics import RedactionMetrics
from gateway.redaction.redactor import Redactor
from gateway.redaction.responses_events import ResponsesRewriter
from gateway.redaction.state import RedactionState
from gateway.redaction.stream import Channel
from gateway.sse import SSEEvent

#: ``redact_out``'s stream rewriter for the call (False: nothing to rewrite).
_REWRITER: Slot[ChatRewriter | ResponsesRewriter | Literal[False]] = Slot("redaction.rewriter")


def wants_json(call: Call) -> bool:
    """The request asked for JSON-mode content (chat ``response_format``, responses
    ``text.format``): its streamed text is JSON source."""
    body = call.body if isinstance(call.body, dict) else {}
    fmt = body.get("response_format")
    if not isinstance(fmt, dict):
        text = body.get("text")
        fmt = text.get("format") if isinstance(text, dict) else None
    return isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema")


class RedactInStage(Stage):
    name = "redact_in"

    def __init__(self, redactor: Redactor, metrics: RedactionMetrics | None = None) -> None:
        self.redactor = redactor
        self.metrics = metrics

    async def on_request(self, call: Call) -> None:
        try:
            pii = await self.redactor.redact_request(call)
        except SensitiveDataBlocked as exc:
            types = exc.extra.get("entity_types", [])
            self._count(call.pii)
            if self.metrics:
                self.metrics.blocked.inc()
            call.decisions.append(
                Decision(
                    self.name,
                    "request",
                    "deny",
                    [f"sensitive data: {', '.join(types)}"],
                    detail={"blocked": types},
                )
            )
            raise
        self._count(pii)
        entities = pii["entities"]
        reasons = [
            f"redacted {n} {e}" for e, n in sorted(entities.items()) if pii["actions"].get(e) != "allow"
        ]
        call.decisions.append(
            Decision(
                self.name,
                "request",
                "allow",
                reasons,
                detail={"entities": dict(entities), "unscanned": pii["unscanned"]},
            )
        )
        # redact_out reads a chat stream's lines itself (``ChatRewriter.on_batch``): no event
        # object for each of its ~700 chunks (``sse.RawRead``).
        call.raw_reads = call.stream and call.endpoint is Endpoint.CHAT

    def _count(self, pii: dict[str, Any] | None) -> None:
        if self.metrics and pii and pii["entities"]:
            self.metrics.count(pii["entities"], "request")


class RedactOutStage(Stage):
    name = "redact_out"
    reads_stream = True

    def __init__(self, redactor: Redactor, metrics: RedactionMetrics | None = None) -> None:
        self.redactor = redactor
        self.metrics = metrics

    def _active(self, state: RedactionState) -> bool:
        return self.redactor.settings.scan_output or state.vault.restorable > 0

    async def on_response(self, call: Call, response: ModelResponse) -> None:
        state = self._state(call)
        if response.json is None or not self._active(state) or call.endpoint is Endpoint.EMBEDDINGS:
            return
        if rewrite_body(call.endpoint, response.json, self._whole(state), self.redactor.unknown):
            response.dirty = True
        self._finish(call, state)

    async def on_chunk(self, call: Call, event: SSEEvent) -> Sequence[SSEEvent]:
        out: list[SSEEvent] = []
        await self.on_batch(call, (event,), out)
        return out

    async def on_batch(self, call: Call, events: Sequence[SSEEvent], out: list[SSEEvent]) -> None:
        # One upstream read's events together: the content-only chat chunks of the read are
        # redacted as one text (``ChatRewriter.on_batch``), not 3 characters at a time.
        rewriter: ChatRewriter | ResponsesRewriter | Literal[False] | None = call.slots.get(_REWRITER)
        if rewriter is None:
            state = self._state(call)
            rewriter = self._rewriter(call, state) if self._active(state) else False
            _REWRITER.put(call, rewriter)
        if rewriter is False:
            out.extend(events)
            return
        if type(rewriter) is ChatRewriter:
            done = rewriter.on_batch(events, out)
        else:
            done = False
            for event in events:
                out.extend(rewriter.on_event(event))
                done = done or event.is_done
        if done:
            self._finish(call, self.redactor.state(call))

    async def on_stream_end(self, call: Call) -> Sequence[SSEEvent]:
        rewriter = _REWRITER.get(call)
        if not rewriter:
            return ()
        out = rewriter.flush_all()
        self._finish(call, self.redactor.state(call))
        return out

    # -- helpers ------------------------------------------------------------------------------

    def _state(self, call: Call) -> RedactionState:
        """The call's state; a policy ``redact`` decided after ``redact_in`` applies to the answer."""
        state = self.redactor.state(call)
        if call.policy_redact:
            state.actions = self.redactor.actions_for(call)
        return state

    def _whole(self, state: RedactionState) -> WholeText:
        def whole(text: str, json: bool, path: str, tool: bool = False, url: bool = False) -> str:
            # JSON-mode content (or any answer text that is a JSON document) is replaced
            # JSON-aware too, so it still parses and numbers come back as numbers.
            json = json or is_json(text)
            return self.redactor.redact_output_text(text, state, json=json, path=path, tool=tool, url=url)

        return whole

    def _rewriter(self, call: Call, state: RedactionState) -> ChatRewriter | ResponsesRewriter:
        json_mode = wants_json(call)

        def new_channel(json: bool, path: str, tool: bool = False) -> Channel:
            # JSON-mode: the message text (not refusals or reasoning) is JSON source.
            text = path.endswith(".message.content") or (path.endswith(".text") and "summary" not in path)
            json = json or (json_mode and not tool and text)
            return self.redactor.new_channel(state, json=json, path=path, tool=tool)

        if call.endpoint is Endpoint.RESPONSES:
            return ResponsesRewriter(new_channel, self._whole(state), self.redactor.unknown)
        return ChatRewriter(new_channel, self._whole(state))

    def _finish(self, call: Call, state: RedactionState) -> None:
        if state.finished:
            return
        state.finished = True
        restored = state.restored + sum(ch.restorer.restored for ch in state.channels.values() if ch.restorer)
        out = state.out_summary.as_dict()
        out["restored"] = restored
        out["scanned"] = self.redactor.settings.scan_output  # content capture needs it (audit)
        answer = state.actions.answer
        out["actions"] = {e: str(answer[e]) for e in out["entities"] if e in answer}
        pii = call.pii
        if pii is None:
            pii = call.pii = {"entities": {}, "locations": [], "unscanned": 0}
        pii["response"] = out
        if self.metrics and out["entities"]:
            self.metrics.count(out["entities"], "response")
        reasons = [
            f"{'left' if out['actions'].get(e) == 'allow' else 'redacted'} {n} {e} in the answer"
            for e, n in sorted(out["entities"].items())
        ]
        if restored:
            reasons.append(f"restored {restored} placeholder(s)")
        detail: dict[str, object] = {"entities": out["entities"], "restored": restored}
        over = state.answer_budget.over if state.answer_budget is not None else None
        if over is not None:  # scanned in full and delivered all the same (budget.py)
            reasons.append(f"the answer went over its scan budget ({over}); scanned in full")
            detail["over_budget"] = over
            if self.metrics:
                self.metrics.answer_over_budget.inc()
        call.decisions.append(Decision(self.name, "response", "allow", reasons, detail=detail))
