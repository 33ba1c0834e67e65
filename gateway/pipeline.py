"""The pipeline every OpenAI-compatible call flows through: its stages, in ``STAGE_ORDER``.

The order, and why it is that order, is written once, in ``gateway/registry.py``
(``STAGE_ORDER``, re-exported here); components register their stages in any order.

A stage is a small class with any of the hooks below; the pipeline calls only the hooks a
stage overrides, so an idle hook costs nothing on the hot path. A stage stops the chain by
raising a ``GatewayError``. A stage that sets ``call.response`` during the request phase
(``forward``, or a stage that replays a stored answer) ends the request phase.

A call's lifecycle has one owner: ``CallScope`` (``pipeline.scope(call)``). The HTTP layer
enters it once per call and asks it to run the phases; whatever way the call ends (answer,
error, client gone, cancelled, cut by the shutdown drain), the scope runs ``finish`` exactly
once and then awaits what finish hooks deferred.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Coroutine, Sequence
from types import TracebackType
from typing import ClassVar

from gateway.call import Call, ModelResponse
from gateway.errors import GatewayError, ShuttingDown
from gateway.registry import STAGE_ORDER
from gateway.sse import RawRead, SSEEvent

log = logging.getLogger("wardgate.pipeline")


class Stage:
    """Base class: override the hooks the stage needs, leave the rest."""

    name: ClassVar[str] = "stage"
    #: Whether the client's answer waits for this stage's ``on_finish``, because its failure may
    #: still turn the answer into an error (audit failing closed). When no finish hook gates,
    #: the HTTP layer hands the answer to the transport and then runs ``finish`` without
    #: yielding in between, so what a hook issues synchronously (settle's store command) still
    #: comes before anything this worker does for the client's next call.
    gates_answer: bool = True
    #: Whether the stage judges or rewrites stream events: with any such stage registered, the
    #: providers component adds ``stream_trust`` so the upstream's events must add up first.
    reads_stream: ClassVar[bool] = False

    async def on_request(self, call: Call) -> None:
        """Before forwarding; raise a ``GatewayError`` to stop the call."""

    async def on_response(self, call: Call, response: ModelResponse) -> None:
        """On a complete (non-stream) answer; edit ``response.json`` and set ``dirty``."""

    async def on_chunk(self, call: Call, event: SSEEvent) -> Sequence[SSEEvent]:
        """On each stream event; return the events to release (none to hold it back)."""
        return (event,)

    async def on_batch(self, call: Call, events: Sequence[SSEEvent], out: list[SSEEvent]) -> None:
        """On the events of one upstream read, in order: append what to release to ``out``.

        By default each event goes to ``on_chunk``. A stage overrides it when the events of a
        read cost less together (redaction analyses a read's deltas once, not per 3-character
        delta). It appends as it goes: if it raises, what it appended before is released
        (through the stages after it) and sent before the error."""
        on_chunk = self.on_chunk
        for event in events:
            out.extend(await on_chunk(call, event))

    async def on_stream_end(self, call: Call) -> Sequence[SSEEvent]:
        """When the upstream stream has ended; return anything still held back."""
        return ()

    def passes_read(self, call: Call, read: RawRead) -> bool:
        """True: this stage would release every event of ``read`` as it is, unchanged and
        with nothing to note, so it goes on whole (its event objects are never made for this
        stage: ``sse.RawRead``). Decided on the read's bytes; False (the default) means "give
        me the events"."""
        return False

    async def on_finish(self, call: Call) -> None:
        """Always, once per call, after the answer or the error is known (settle, audit).

        A hook whose effect is issued here but whose confirmation only needs waiting for (a
        store's reply) appends that wait to ``call.deferred``: it runs after the answer."""


def _overrides(stage: Stage, hook: str) -> bool:
    return getattr(type(stage), hook) is not getattr(Stage, hook)


class Pipeline:
    def __init__(self, stages: Sequence[Stage], order: Sequence[str] = STAGE_ORDER) -> None:
        """``stages`` in any order; they run in ``order`` (the gateway's: ``STAGE_ORDER``)."""
        position = {name: i for i, name in enumerate(order)}
        unknown = [s.name for s in stages if s.name not in position]
        if unknown:
            raise ValueError(f"stages not in STAGE_ORDER: {unknown}")
        self.stages: list[Stage] = sorted(stages, key=lambda s: position[s.name])
        self._request = [s for s in self.stages if _overrides(s, "on_request")]
        self._response = [s for s in self.stages if _overrides(s, "on_response")]
        self._chunk = [
            s
            for s in self.stages
            if _overrides(s, "on_chunk") or _overrides(s, "on_batch") or _overrides(s, "on_stream_end")
        ]
        #: The chunk stages, each with whether it takes a read's events together (``on_batch``)
        #: and whether it may let a raw read pass whole (``passes_read``).
        self._chunk_batch = [
            (s, _overrides(s, "on_batch"), _overrides(s, "passes_read")) for s in self._chunk
        ]
        self._finish = [s for s in self.stages if _overrides(s, "on_finish")]
        self.finish_gates_answer = any(s.gates_answer for s in self._finish)

    async def run_request(self, call: Call) -> ModelResponse:
        """Run the request phase up to and including ``forward``; return the answer."""
        timings = call.timings
        for stage in self._request:
            t0 = time.perf_counter()
            try:
                await stage.on_request(call)
            finally:
                timings[stage.name] = time.perf_counter() - t0
            if call.response is not None:
                return call.response
        raise RuntimeError("pipeline ended without a response: is the forward stage missing?")

    def request_stage_running(self, call: Call) -> str | None:
        """The request-phase stage ``call`` is in, for a caller looking from outside (the
        drain, deciding whether cutting the call is safe). Derived, not tracked: each stage's
        time is recorded when it ends, so it is the first stage without one. Costs nothing
        on the hot path; only meaningful while ``run_request`` is running."""
        timings = call.timings
        for stage in self._request:
            if stage.name not in timings:
                return stage.name
        return None

    async def run_response(self, call: Call, response: ModelResponse) -> None:
        """Run the response phase on a complete answer."""
        timings = call.timings
        for stage in self._response:
            t0 = time.perf_counter()
            try:
                await stage.on_response(call, response)
            finally:
                timings[stage.name] = timings.get(stage.name, 0.0) + time.perf_counter() - t0

    async def release(self, call: Call, batch: Sequence[SSEEvent], out: list[SSEEvent]) -> None:
        """Feed one upstream batch (one network read) through the chunk stages, stage by stage
        (``on_batch``: each stage gets what the stages before it released from the whole read),
        appending what the last releases to ``out``. If a stage raises, what it released
        before the failure still passes the stages after it into ``out``, so the HTTP layer
        can send it before the error (as when the events went one by one)."""
        events: Sequence[SSEEvent] = batch
        stages = self._chunk_batch
        for k, (stage, whole, passes) in enumerate(stages):
            if (
                passes
                and type(events) is RawRead
                and events.parts is not None
                and stage.passes_read(call, events)
            ):
                continue
            if not whole and len(events) == 1:  # the common read of a live stream: one event
                events = await stage.on_chunk(call, events[0])
            else:
                released: list[SSEEvent] = []
                try:
                    await _run(stage, whole, call, events, released)
                except Exception:
                    if released:
                        with contextlib.suppress(Exception):  # the first failure is the one reported
                            await _through(stages, k + 1, call, released, out)
                    raise
                events = released
            if not events:
                return
        out.extend(events)

    async def end_stream(self, call: Call, out: list[SSEEvent]) -> None:
        """The upstream ended: flush what the chunk stages still hold, stage by stage (what
        one stage releases now still passes through the stages after it)."""
        pending: list[SSEEvent] = []
        for stage in self._chunk:
            held: list[SSEEvent] = []
            if pending:
                await stage.on_batch(call, pending, held)
            held.extend(await stage.on_stream_end(call))
            pending = held
        out.extend(pending)

    async def iter_stream(self, call: Call, events: AsyncIterator[SSEEvent]) -> AsyncIterator[SSEEvent]:
        """The released events one by one, for callers that hold a plain event iterator."""
        out: list[SSEEvent] = []
        async for event in events:
            await self.release(call, (event,), out)
            for released in out:
                yield released
            out.clear()
        await self.end_stream(call, out)
        for released in out:
            yield released

    async def finish(self, call: Call) -> None:
        """Run every ``on_finish`` hook; one failing does not stop the others.

        The first ``GatewayError`` raised (e.g. audit failing closed) is re-raised after all
        hooks ran, so the HTTP layer can still turn it into the client's answer; any other
        exception is a bug in a hook and is logged, never shown to the client.
        """
        first_error: GatewayError | None = None
        for stage in self._finish:
            t0 = time.perf_counter()
            try:
                await stage.on_finish(call)
            except GatewayError as exc:
                first_error = first_error or exc
                log.error(
                    "finish hook %s refused the call: %s",
                    stage.name,
                    exc.message,
                    extra={"request_id": call.request_id},
                )
            except Exception:  # each finish hook must run regardless of the others
                log.exception("finish hook %s failed", stage.name, extra={"request_id": call.request_id})
            finally:
                call.timings[stage.name] = call.timings.get(stage.name, 0.0) + time.perf_counter() - t0
        if first_error is not None:
            raise first_error

    def scope(self, call: Call, task: asyncio.Task[object] | None = None) -> CallScope:
        """The owner of ``call``'s lifecycle (``task``: the task serving it, for the drain)."""
        return CallScope(self, call, task)

    async def after_answer(self, call: Call) -> None:
        """Await what the finish hooks deferred (``call.deferred``), once the answer is out.
        Never raises: the answer is already with the client."""
        deferred = call.deferred
        while deferred:
            pending = deferred.pop(0)
            try:
                await pending
            except Exception:
                log.exception("deferred finish work failed", extra={"request_id": call.request_id})


async def _run(
    stage: Stage, whole: bool, call: Call, events: Sequence[SSEEvent], released: list[SSEEvent]
) -> None:
    """One stage over a read's ``events``, appending what it releases to ``released`` (its
    ``on_batch`` when it has its own, else ``on_chunk`` per event); what it released before a
    failure stays in ``released`` for the caller to pass on."""
    if whole:
        await stage.on_batch(call, events, released)
    else:
        for event in events:
            released.extend(await stage.on_chunk(call, event))


async def _through(
    stages: Sequence[tuple[Stage, bool, bool]],
    start: int,
    call: Call,
    events: Sequence[SSEEvent],
    out: list[SSEEvent],
) -> None:
    """What a failed stage released before failing, through the stages after it into ``out``
    (``Pipeline.release``; a failure here keeps only what passed them all, and raises)."""
    for k in range(start, len(stages)):
        stage, whole, _ = stages[k]
        released: list[SSEEvent] = []
        try:
            await _run(stage, whole, call, events, released)
        except Exception:
            if released:
                await _through(stages, k + 1, call, released, out)
            raise
        if not released:
            return
        events = released
    out.extend(events)


class CallScope:
    """One call from its request phase to the last deferred wait: ``finish`` runs exactly once.

    The HTTP layer enters it (``async with pipeline.scope(call) as scope``) and only
    translates: it asks the scope to run the phases (``request``, ``respond``, ``release``,
    ``end_stream``), to ``finish`` where the answer waits for it (a gating finish hook), or to
    ``fail`` with the error it is about to send. Any other way out of the block (a client
    that left, a cancellation) still finishes the call on exit, once; the exit then awaits
    what finish hooks deferred (``call.deferred``), after the answer.

    It also carries what the shutdown drain needs to cut the call at a safe point: the task
    serving it, the ``region`` it is in (set by the HTTP layer around cuttable waits) and
    whether it was cut (``fired``); ``stage_running`` tells the drain which request stage runs.
    """

    __slots__ = ("_finished", "_pipeline", "call", "fired", "gates_answer", "region", "task")

    def __init__(self, pipeline: Pipeline, call: Call, task: asyncio.Task[object] | None = None) -> None:
        self._pipeline = pipeline
        self.call = call
        self.task = task
        self.region: str | None = None
        self.fired = False
        self._finished = False
        #: Whether the answer must wait for ``finish`` (a finish hook may still refuse it).
        self.gates_answer = pipeline.finish_gates_answer

    async def __aenter__(self) -> CallScope:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.region = None
        call = self.call
        if not self._finished:
            if exc is not None and call.error is None and not call.client_disconnected:
                # Only a cancellation the HTTP layer did not absorb gets here (the server
                # stopping without waiting): the call is recorded as cut by the shutdown.
                call.error = (
                    exc
                    if isinstance(exc, Exception)
                    else ShuttingDown("The call was cancelled before it finished.")
                )
            await self.finish_quietly()
        if call.deferred:  # after the answer, on every path
            await self._pipeline.after_answer(call)

    # -- the phases: the pipeline's own coroutines (no frame of ours in the await chain) ----
    def request(self) -> Coroutine[object, None, ModelResponse]:
        """The request phase up to and including ``forward``; its result is the answer."""
        return self._pipeline.run_request(self.call)

    def respond(self, response: ModelResponse) -> Coroutine[object, None, None]:
        """The response phase on a complete answer."""
        return self._pipeline.run_response(self.call, response)

    def release(self, batch: Sequence[SSEEvent], out: list[SSEEvent]) -> Coroutine[object, None, None]:
        """One upstream read through the chunk stages (``Pipeline.release``)."""
        return self._pipeline.release(self.call, batch, out)

    def end_stream(self, out: list[SSEEvent]) -> Coroutine[object, None, None]:
        """The upstream ended: what the chunk stages still hold (``Pipeline.end_stream``)."""
        return self._pipeline.end_stream(self.call, out)

    # -- the end ---------------------------------------------------------------------------
    async def finish(self) -> None:
        """Run the finish hooks now, if they have not run; re-raises the first
        ``GatewayError`` a hook raised (an audit store refusing the event), so the answer
        can still become that error."""
        if self._finished:
            return
        self._finished = True
        await self._pipeline.finish(self.call)

    async def finish_quietly(self) -> None:
        """``finish`` for a call whose answer is already decided (sent, or an error): a
        hook's refusal is logged, not raised."""
        if self._finished:
            return
        self._finished = True
        try:
            await self._pipeline.finish(self.call)
        except GatewayError:
            log.warning(
                "finish failed on an already answered call", extra={"request_id": self.call.request_id}
            )

    async def fail(self, error: Exception) -> None:
        """The call ends with ``error`` (what the client is about to be sent): record it and
        finish, once."""
        self.call.error = error
        await self.finish_quietly()

    def absorb(self) -> None:
        """A cancellation was the gateway's own (the drain's cut, the client leaving): take
        it back so the awaits of ``finish`` run normally."""
        if self.task is not None:
            self.task.uncancel()

    def stage_running(self) -> str | None:
        return self._pipeline.request_stage_running(self.call)
