"""Graceful drain of one worker: what happens between SIGTERM and the process's exit.

    SIGTERM ─┬─ /readyz answers 503 "draining"; approval holds are handed back (409
             │  approval_pending with the id: the approval stays pending, and a re-send with
             │  X-Wardgate-Approval-Id to any replica picks up the outcome)
             ├─ + shutdown_delay_s: the server closes its listener (new connections are refused)
             │  and idle keep-alive connections; calls in flight go on
             └─ + shutdown_grace_s: what is still running is cut, at a safe point: a stream gets
                an SSE ``error`` event (``shutting_down``), a non-stream call a 503
                ``shutting_down``; either way the call is finished like any failed call (its
                reservation settled, at the reserved amount once it reached the provider, and
                its audit event stored) before the worker exits.

Why a cut and not the server's own timeout: uvicorn cancels the tasks still running when its
graceful timeout ends, and a cancelled call runs none of its finish hooks (no settle, no audit
event, a stream that just stops). The cut happens first, by the same cancellation the
client-disconnect guard uses, and the proxy turns it into an error it can answer and record.

A call is cut only where cancelling it is known to be safe: while its body is read, while it
waits for the provider (the ``forward`` stage), or while it relays a stream. Anywhere else
(a limits or audit store round trip, a policy evaluation) it is left to reach the next safe
point: the drain looks again every ``_SWEEP_S`` until nothing is left. A call in flight is its
``CallScope`` (``gateway.pipeline``): the task serving it, the region it is in, whether it
was cut; one object per call for both its lifecycle and the drain. Approval holds are not
cut but released at SIGTERM (their wait is for a human, not for work that may end in time).

The server side (``wardgate serve``) delivers the signal: the lifespan chains a handler in
front of the server's own (``install_signal_hooks``), so the drain begins at once and the
server's shutdown starts after ``shutdown_delay_s``.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from gateway.errors import ShuttingDown

if TYPE_CHECKING:
    from gateway.pipeline import CallScope

log = logging.getLogger("wardgate.drain")

#: How often the drain looks again for calls it could not cut yet (not at a safe point).
_SWEEP_S = 0.05
_SIGNALS = (signal.SIGTERM, signal.SIGINT)
#: After a second Ctrl+C, how long the cut calls get to be settled and audited before the server
#: is told to stop waiting for them.
_FORCE_WAIT_S = 2.0
#: Request-phase stages whose wait may be cancelled: the provider call (aiohttp closes it).
_CUTTABLE_STAGES = frozenset({"forward"})

#: Where a call is, for the drain: reading the body, in the request phase, relaying a stream.
BODY, REQUEST, STREAM = "body", "request", "stream"


def shutting_down() -> ShuttingDown:
    return ShuttingDown(
        "The gateway is shutting down and could not finish this call in time; retry it "
        "(another replica will answer).",
        headers={"retry-after": "1"},
    )


class Drain:
    """The drain state of one app (one worker): created with the context, lives as long."""

    def __init__(self, grace_s: float = 30.0, delay_s: float = 0.0) -> None:
        self.grace_s = grace_s
        self.delay_s = delay_s
        self.draining = False
        self.cutting = False
        self._calls: set[CallScope] = set()
        self._on_begin: list[Callable[[], None]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._signals: list[int] = []
        #: The app's loop, known once the lifespan started: ``current_task(loop)`` skips the
        #: running-loop lookup on every call.
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the calls ---------------------------------------------------------------------
    def task(self) -> asyncio.Task[Any] | None:
        """The task running now (the one serving a call that is starting)."""
        return asyncio.current_task(self._loop)

    def enter(self, call: CallScope) -> None:
        self._calls.add(call)

    def leave(self, call: CallScope) -> None:
        self._calls.discard(call)

    def check(self, call: CallScope, region: str) -> None:
        """Enter a cuttable ``region``; once the grace is over, a call reaching one is cut here."""
        if self.cutting and not call.fired:
            call.fired = True
            raise shutting_down()
        call.region = region

    def in_flight(self) -> int:
        return len(self._calls)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        """The app's event loop once its lifespan has started (the drain runs on it)."""
        return self._loop

    # -- the drain ---------------------------------------------------------------------
    def on_begin(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` when the drain begins (components release what waits for a human)."""
        self._on_begin.append(hook)

    def begin(self) -> None:
        """Stop being ready and start the grace; idempotent."""
        if self.draining:
            return
        self.draining = True
        log.warning(
            "draining: %d call(s) in flight; they may run %.1f s more (server.shutdown_grace_s)",
            len(self._calls),
            self.delay_s + self.grace_s,
        )
        for hook in self._on_begin:
            try:
                hook()
            except Exception:  # one component failing must not stop the drain
                log.exception("drain hook failed")
        self._timer = asyncio.get_running_loop().call_later(self.delay_s + self.grace_s, self.cut)

    def cut(self) -> None:
        """The grace is over: cut every call at a safe point (now, or as soon as it reaches one)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self.cutting:
            self.cutting = True
            if self._calls:
                log.warning("shutdown grace over: cutting %d call(s) still in flight", len(self._calls))
        self._sweep()

    def _sweep(self) -> None:
        for cut in list(self._calls):
            if not cut.fired and self._cuttable(cut):
                cut.fired = True
                if cut.task is not None:
                    cut.task.cancel()
        if any(not c.fired for c in self._calls):
            asyncio.get_running_loop().call_later(_SWEEP_S, self._sweep)

    def _cuttable(self, call: CallScope) -> bool:
        if call.region == REQUEST:
            return call.stage_running() in _CUTTABLE_STAGES
        return call.region in (BODY, STREAM)

    # -- the signal ----------------------------------------------------------------------
    def install_signal_hooks(self) -> Callable[[], None]:
        """Chain a SIGTERM/SIGINT handler in front of the server's own; returns the undo.

        Only in the main thread (where signals are delivered), and only in front of a
        handler that is a server's (a callable that is not Python's default KeyboardInterrupt):
        the drain then begins at the signal, and the server's handler (which closes the
        listener and waits for the connections) is called ``delay_s`` later. A second Ctrl+C
        cuts what is left at once and is passed on (uvicorn then stops waiting too)."""
        loop = self._loop = asyncio.get_running_loop()
        if threading.current_thread() is not threading.main_thread():
            return lambda: None
        installed: dict[int, tuple[Any, Any]] = {}
        for sig in _SIGNALS:
            previous = signal.getsignal(sig)
            if not callable(previous) or previous is signal.default_int_handler:
                continue

            def handler(signum: int, frame: FrameType | None, previous: Any = previous) -> None:
                loop.call_soon_threadsafe(self._signalled, signum, previous)

            signal.signal(sig, handler)
            installed[sig] = (handler, previous)

        def restore() -> None:
            for sig, (handler, previous) in installed.items():
                if signal.getsignal(sig) is handler:
                    signal.signal(sig, previous)

        return restore

    def _signalled(self, signum: int, server_handler: Callable[[int, FrameType | None], Any]) -> None:
        repeated_interrupt = signum == signal.SIGINT and signal.SIGINT in self._signals
        self._signals.append(signum)
        if not self.draining:
            self.begin()
            if self.delay_s > 0:
                asyncio.get_running_loop().call_later(self.delay_s, server_handler, signum, None)
                return
        elif repeated_interrupt:
            # A second Ctrl+C: the operator wants out now. (Not any second signal: with
            # --workers, one Ctrl+C reaches a worker twice, from the terminal as SIGINT and
            # from the supervisor as SIGTERM, and must still drain gracefully.) The server
            # hears of it once the cut calls are recorded: it would stop waiting for them.
            self.cut()
            self._pass_when_recorded(signum, server_handler, _FORCE_WAIT_S)
            return
        server_handler(signum, None)

    def _pass_when_recorded(
        self, signum: int, server_handler: Callable[[int, FrameType | None], Any], left_s: float
    ) -> None:
        if not self._calls or left_s <= 0:
            server_handler(signum, None)
            return
        asyncio.get_running_loop().call_later(
            _SWEEP_S, self._pass_when_recorded, signum, server_handler, left_s - _SWEEP_S
        )
