"""The work budget of one request (and of one answer): what redaction may spend on it.

Limits per text do not bound a request: ten messages of 1,999 phone numbers each stayed
under a per-text limit and cost 3.2-3.7 s of CPU. So the budget is per request, across all
its fields, and is spent in two steps:

1. before anything is analysed, the characters of every text that is not a cache hit (plus
   ``TEXT_CHARS`` each: a text has a fixed cost) and a rough count of their candidates (digit
   chains and ``@`` signs: C-speed scans) are checked, so a hostile request is refused in
   milliseconds (``precheck``);
2. while texts are analysed, the pre-filter charges what each family really has to check
   (``take``), and the phone-number candidates that need python-phonenumbers' matcher
   (~0.2-0.8 ms each, the expensive part) have their own, smaller allowance.

Exceeding it is a 413 ``content_too_large`` (characters) or a 400 ``content_too_complex``
(candidates): fail closed, never let text through unscanned. An answer's budget does not
refuse (``refuse=False``): the provider has run and billed the answer, and refusing it then
threw away what the caller paid for. Its size was bounded before the call (the output-token
bound the gateway enforces) and every token of it is paid for, so it is scanned in full,
delivered and booked at its real cost, stream or not; going over is recorded (``over``: the
redaction decision and ``wardgate_redaction_answer_over_budget_total`` say so).

A cache hit (a text already analysed: the conversation an agent resends) is not analysed
again, but its values are still replaced, and a text of 1,999 phone numbers resent ten
times cost ~100 normal calls in replacement alone. So a hit is charged by the values it
holds, at what replacing one costs next to checking a candidate (``cached``): an agent
resending a contact list pays a fraction of what it paid when the list was new, and a
request cannot replace more values than the candidate allowance buys. Identical texts of one
request are analysed and replaced once, so they are charged once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Generator, Iterable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from gateway.errors import BadRequest, PayloadTooLarge

T = TypeVar("T")
_NO_RETRY = {"x-should-retry": "false"}
#: Values of a cache hit charged as one candidate. Replacing a value costs ~0.5 us (a CSV of
#: 2,500 contacts: ~1.3 ms), checking a candidate ~8 us (the same CSV new: ~20 ms); 8 rather
#: than 16 leaves room for the summary and the body written back.
CACHED_PER_CANDIDATE = 8
#: Characters each new text is charged besides its own: analysing a text costs ~16 us before
#: its first character (the normalised view, the pre-filter's scan, the families), ~500
#: characters of prose. Without it 100,000 distinct two-character strings fitted the
#: character allowance and cost seconds.
TEXT_CHARS = 256


#: The longest stretch of one request's redaction work between two returns to the event loop.
#: Analysing and replacing run on the loop; a request holding it for 3 ms made every other
#: client's call wait behind it (a normal call, ~1.2 ms, took 2-3x longer beside attackers).
#: A normal call has several steps on the loop and each may wait for a slice in flight:
#: 0.25 ms rather than 0.5 (a pause costs a few us: ~1-2% more for the heavy request).
SLICE_S = 0.00025
#: What ``pause`` sleeps: any positive delay makes it a timer (the loop's clock resolution
#: makes it due at once).
_YIELD_S = 1e-9


class LoopSlice:
    """Hands the event loop back between pieces of one request's work once they ran a slice
    (``pause`` between texts): other clients' callbacks run in between, so work in flight
    delays them by a slice, not by the whole request. Costs a clock read per piece.

    ``due`` is the clock reading (``time.perf_counter``) from which the next ``pause`` hands
    the loop back: a loop over many small pieces (a resent conversation's texts) compares it
    itself and awaits ``pause`` only then, instead of a coroutine per piece (~1 us each)."""

    __slots__ = ("due",)

    def __init__(self) -> None:
        self.due = time.perf_counter() + SLICE_S

    async def pause(self) -> None:
        if time.perf_counter() >= self.due:
            # A timer, not ``sleep(0)``: a ``sleep(0)`` resumes ahead of the I/O the loop polls
            # next, so a normal call's every step waited behind each heavy request's next
            # slice; a due timer runs after that I/O's callbacks (``_run_once``: events, then
            # timers), so light work goes first and heavy work gets the rest of the loop.
            await asyncio.sleep(_YIELD_S)
            self.due = time.perf_counter() + SLICE_S

    async def run(self, steps: Generator[None, None, T]) -> T:
        """Run a generator of work to its return value, pausing (as ``pause``) at each of its
        yields and after it: one text of 2,000 values to replace is several slices."""
        clock = time.perf_counter
        while True:
            try:
                next(steps)
            except StopIteration as done:
                if clock() >= self.due:
                    await self.pause()
                return done.value
            if clock() >= self.due:
                await self.pause()


class ChainCounter(Protocol):
    """What the pre-check asks of the digit-chain scanner (``scan.ChainScanner``)."""

    def count(self, text: str, allowance: int) -> tuple[int, bool]:
        """(chains, exact): a bound within ``allowance``, or the exact count."""
        ...


def content_too_large(message: str) -> PayloadTooLarge:
    return PayloadTooLarge(message, code="content_too_large", headers=_NO_RETRY)


def content_too_complex(message: str) -> BadRequest:
    return BadRequest(message, code="content_too_complex", headers=_NO_RETRY)


@dataclass(slots=True)
class WorkBudget:
    max_chars: int
    max_candidates: int
    #: Phone candidates that go to python-phonenumbers' matcher.
    max_matcher: int
    what: str = "request"
    #: False (an answer): going over is recorded in ``over`` and the scan goes on.
    refuse: bool = True
    #: What went over first, when ``refuse`` is False.
    over: str | None = None
    chars: int = 0
    candidates: int = 0
    matcher: int = 0
    #: Values of cache hits, replaced without being analysed again.
    cached_values: int = 0

    def spent(self) -> int:
        """Candidates, with the values of cache hits at their share."""
        return self.candidates + -(-self.cached_values // CACHED_PER_CANDIDATE)

    def precheck(self, texts: Iterable[str], chain: ChainCounter) -> None:
        """Characters, then a rough candidate count, of the texts about to be analysed."""
        for _ in self.precheck_steps(texts, chain):
            pass

    def precheck_steps(self, texts: Iterable[str], chain: ChainCounter) -> Generator[None, None, None]:
        """``precheck``, yielding after each text it counted (a request's ``LoopSlice`` pauses
        there: four texts of 1,999 numbers are ~1.5 ms of counting before a refusal)."""
        texts = list(texts)
        chars = sum(map(len, texts)) + TEXT_CHARS * len(texts)
        if self.chars + chars > self.max_chars:
            if not self.refuse:
                self.over = self.over or "characters"
            else:
                raise content_too_large(
                    f"The {self.what} has {self.chars + chars} characters of new text to scan for "
                    f"sensitive data (each text counts {TEXT_CHARS} more); the limit is {self.max_chars}."
                )
        self.chars += chars
        rough = self.spent()
        bounded: list[tuple[str, int]] = []  # texts charged a bound of their chains, not a count
        for text in texts:
            rough += text.count("@")
            n, exact = chain.count(text, self.max_candidates - rough)
            rough += n
            if not exact:
                bounded.append((text, n))
            elif rough > self.max_candidates:
                # Over on an exact count: the texts charged a bound are counted before refusing.
                rough += sum(chain.count(t, -1)[0] - bound for t, bound in bounded)
                bounded.clear()
                if rough > self.max_candidates:
                    self._refuse(
                        rough, self.max_candidates, "values that look like contact details or numbers"
                    )
            yield

    def cached(self, values: int) -> None:
        """``values`` found in texts already analysed (cache hits), about to be replaced."""
        if not values:
            return
        self.cached_values += values
        spent = self.spent()
        if spent > self.max_candidates:
            self._refuse(spent, self.max_candidates, "values to replace (counted at their share)")

    def take(self, family: str, settled: int, checked: int) -> None:
        """``settled`` candidates decided cheaply, ``checked`` sent to a recognizer."""
        self.candidates += settled + checked
        spent = self.spent()
        if spent > self.max_candidates:
            self._refuse(spent, self.max_candidates, f"{family}-like values")
        if family == "phone":
            self.matcher += checked
            if self.matcher > self.max_matcher:
                self._refuse(self.matcher, self.max_matcher, "phone-number-like values in unusual formats")

    def _refuse(self, count: int, limit: int, what: str) -> None:
        if not self.refuse:
            self.over = self.over or what
            return
        raise content_too_complex(
            f"The {self.what} has more than {limit} {what} ({count}); it is too complex to scan "
            "for sensitive data."
        )
