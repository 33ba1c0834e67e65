"""Streaming redaction and restoration of one text channel (decoded deltas, not SSE bytes).

Invariant (proven by the property test for any chunking): the concatenation of everything a
channel releases equals ``restore(redact(whole text))``, and nothing is released that a later
character could turn into (part of) an entity.

``StreamRedactor`` keeps unreleased text (``pending``) and a little released text as left
context only (``ctx``: never re-sent). When ``pending`` is long enough it analyses
``ctx + pending`` and releases up to a cut that is

* at least ``holdback`` characters before the end (longer than any pattern that may contain
  whitespace: a spaced IBAN, a phone number, a PEM marker, a deny-list term),
* just after a whitespace character (token-shaped secrets of any length never contain
  whitespace, so a cut there can not split one),
* before every match that reaches past it (a PEM block without its END marker yet reaches
  the end of the text, so a private key is held by its markers, whatever its length).

``StreamRestorer`` holds back from an unclosed ``<`` that may still become a placeholder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from gateway.redaction.spans import Span, Spans
from gateway.redaction.vault import MAX_PLACEHOLDER_LEN, Vault

log = logging.getLogger("wardgate.redaction")

Detect = Callable[[str], Spans]
Replace = Callable[[str, list[Span]], str]
_WS = (" ", "\n", "\t", "\r")


def _last_ws(text: str, lo: int, hi: int) -> int:
    return max(text.rfind(ch, lo, hi) for ch in _WS)


def _context_tail(released: str, size: int) -> str:
    """The last ``size`` released characters, as they are: left context for the next window.

    Not cut back to a token boundary: a label-dependent recognizer (``"SecretAccessKey":``,
    ``SSN:``, ``call``) needs its label even when the released text ends in a long run without
    whitespace (minified JSON, a URL, a forced release). ``size`` covers every recognizer's
    label window (``secrets.LABEL_REACH``). A match that a cut-off token at the start of the
    context could fake ends before the released boundary and is ignored.
    """
    return released[-size:] if len(released) > size else released


class StreamRedactor:
    __slots__ = (
        "_ctx",
        "_detect",
        "_holdback",
        "_max_pending",
        "_pending",
        "_replace",
        "_retry_at",
        "_size",
        "_step",
        "changed",
    )

    def __init__(
        self,
        detect: Detect,
        replace: Replace,
        *,
        holdback: int,
        context: int,
        max_pending: int,
        step: int | None = None,
    ) -> None:
        self._detect = detect
        self._replace = replace
        self._holdback = holdback
        self._size = context
        self._max_pending = max_pending
        #: Analyse only every ``step`` new characters: a delta is ~4 characters, and an
        #: analysis of ``ctx + pending`` costs about the same for 4 or 128 new ones, while each
        #: character is analysed in about (context + hold-back + step) / step windows (a 2 KB
        #: answer in 3-character deltas: ~16 analyses at 128, ~32 at 64, not ~700).
        self._step = max(16, step if step is not None else holdback)
        self._pending = ""
        self._ctx = ""
        #: Analyse again once ``pending`` is this long. The first release comes as early as
        #: with a step of the hold-back (the time to the first visible text stays), later ones
        #: every ``step``. After an analysis that could release nothing (a run without
        #: whitespace) the next one waits for half as much again, so a 16 KB run streamed one
        #: character at a time costs ~13 analyses, not 16,000.
        self._retry_at = holdback + min(self._step, max(16, holdback))
        #: Some released text differs from what came in (the answer's logprobs must go).
        self.changed = False

    @property
    def held(self) -> int:
        return len(self._pending)

    def feed(self, delta: str) -> str:
        if not delta:
            return ""
        self._pending += delta
        if len(self._pending) < self._retry_at:
            return ""
        out = self._release(final=False)
        n = len(self._pending)
        if out:
            self._retry_at = self._holdback + self._step
        else:
            self._retry_at = min(n + max(self._step, n // 2), self._max_pending + 1)
            if self._retry_at <= n:  # already past the forced-release size: next delta
                self._retry_at = n + 1
        return out

    def flush(self) -> str:
        return self._release(final=True) if self._pending else ""

    def finish(self, delta: str) -> str:
        """``feed(delta) + flush()`` in one analysis: the channel's last text."""
        self._pending += delta
        return self.flush()

    def _release(self, *, final: bool) -> str:
        window = self._ctx + self._pending
        base = len(self._ctx)
        spans = [s for s in self._detect(window) if s.end > base]
        cut = len(window) if final else self._cut(window, base, spans)
        if cut <= base:
            return ""
        segment: list[Span] = []
        for s in spans:
            if s.end > cut:
                continue
            if s.start < base:
                # A match reaching back into released text: its start is out already (it was
                # not a match when it left). Redact the rest rather than let it through.
                log.debug("stream match straddles a released cut: %s", s.entity)
                s = Span(base, s.end, s.entity, s.score)
            segment.append(Span(s.start - base, s.end - base, s.entity, s.score))
        raw = window[base:cut]
        out = self._replace(raw, segment)
        if segment and out != raw:
            self.changed = True
        self._ctx = _context_tail(window[:cut], self._size)
        self._pending = window[cut:]
        return out

    def _cut(self, window: str, base: int, spans: list[Span]) -> int:
        cut = len(window) - self._holdback
        while cut > base:
            w = _last_ws(window, base, cut)
            if w < 0:
                break
            cut = w + 1
            inside = [s.start for s in spans if s.start < cut < s.end]
            if not inside:
                return cut
            cut = min(inside)
        if len(self._pending) <= self._max_pending:
            return base
        # A whitespace-free run longer than any token we know: release all but the hold-back,
        # still never through a match.
        cut = len(window) - self._holdback
        inside = [s.start for s in spans if s.start < cut < s.end]
        return min(inside) if inside else cut


class StreamRestorer:
    """Restores placeholders in one channel. In JSON source it also holds the quote before a
    placeholder and waits for the character after it, so ``"<PHONE_NUMBER_1>"`` that stood
    for a number goes back as the number whatever the chunking."""

    __slots__ = ("_json", "_only", "_pending", "_vault", "restored")

    def __init__(self, vault: Vault, *, json: bool, only: frozenset[str] | None = None) -> None:
        self._vault = vault
        self._json = json
        self._only = only
        self._pending = ""
        self.restored = 0

    def feed(self, text: str) -> str:
        if not text:
            return ""
        buf = self._pending + text
        i = buf.rfind("<")
        hold = (
            i >= 0
            and len(buf) - i < MAX_PLACEHOLDER_LEN
            and (">" not in buf[i:] or (self._json and buf[-1] == ">"))
        )
        if hold:
            if self._json and i > 0 and buf[i - 1] == '"':
                i -= 1
            self._pending, buf = buf[i:], buf[:i]
        else:
            self._pending = ""
        return self._restore(buf)

    def flush(self) -> str:
        buf, self._pending = self._pending, ""
        return self._restore(buf)

    def _restore(self, text: str) -> str:
        out, n = self._vault.restore(text, json=self._json, only=self._only)
        self.restored += n
        return out


class Channel:
    """One text stream of the answer: redactor then restorer, either optional."""

    __slots__ = ("emitted", "redactor", "restorer")

    def __init__(self, redactor: StreamRedactor | None, restorer: StreamRestorer | None) -> None:
        self.redactor = redactor
        self.restorer = restorer
        #: Everything released so far: what the client has seen (for ``*.done`` events).
        self.emitted: list[str] = []

    def feed(self, delta: str, final: bool = False) -> str:
        """What ``delta`` releases; ``final``: it is the channel's last text, all released now
        (as ``flush`` would: nothing is held for what cannot come)."""
        if final:
            return self._finish(delta)
        red = self.redactor
        if red is not None:
            # StreamRedactor.feed's common case, inlined (it runs once per chunk, ~700 times
            # for a 2 KB answer in 3-character deltas): too little new text to analyse yet,
            # so nothing is released and the restorer has nothing to see.
            pending = red._pending + delta
            if delta and len(pending) < red._retry_at:
                red._pending = pending
                return ""
            out = red.feed(delta)
        else:
            out = delta
        if self.restorer is not None:
            out = self.restorer.feed(out)
        if out:
            self.emitted.append(out)
        return out

    def _finish(self, delta: str) -> str:
        out = self.redactor.finish(delta) if self.redactor else delta
        if self.restorer:
            out = self.restorer.feed(out) + self.restorer.flush()
        if out:
            self.emitted.append(out)
        return out

    def flush(self) -> str:
        out = self.redactor.flush() if self.redactor else ""
        if self.restorer:
            out = self.restorer.feed(out) + self.restorer.flush()
        if out:
            self.emitted.append(out)
        return out

    @property
    def text(self) -> str:
        return "".join(self.emitted)

    @property
    def changed(self) -> bool:
        """Redaction or restoration changed something: tokens of the raw answer must not go out."""
        return bool(self.redactor and self.redactor.changed) or bool(self.restorer and self.restorer.restored)
