"""Detection: which spans of a text are which entity. Built once per process, at startup.

``analyze`` is the whole-text truth every other part agrees with (the stream redactor
included): the pre-filter picks the families and windows worth analysing, Presidio analyses
them, per-entity thresholds filter the results, and ``resolve`` makes the spans disjoint.
Results are cached per content hash; long texts go to a worker thread.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import logging
import operator
import time
from collections.abc import Generator, Sequence
from concurrent.futures import ThreadPoolExecutor
from hashlib import sha256
from itertools import islice, repeat

from presidio_analyzer import EntityRecognizer

from gateway.redaction.analyzer import WARM_UP_TEXT, NoContextEnhancer, build_analyzer, shared_artifacts
from gateway.redaction.budget import LoopSlice, WorkBudget, content_too_large
from gateway.redaction.cache import LruCache, text_key
from gateway.redaction.config import RedactionSettings
from gateway.redaction.normalize import View
from gateway.redaction.phones import LABELLED_PHONE
from gateway.redaction.prefilter import Scan, build_families, windows
from gateway.redaction.scan import ChainScanner
from gateway.redaction.secrets import LABELLED_SECRET, extend_wrapped
from gateway.redaction.spans import Span, Spans

log = logging.getLogger("wardgate.redaction")


class RedactionEngine:
    def __init__(self, settings: RedactionSettings) -> None:
        self.settings = settings
        self.language = settings.nlp.language
        self.analyzer = build_analyzer(settings)
        self._artifacts = shared_artifacts(self.analyzer, self.language)
        self.entities = set(settings.actions)
        self.families, self._chain = build_families(
            self.entities, settings.deny_lists, tuple(settings.phone_regions), settings.phone_leniency
        )
        #: Each family's recognizers, called directly (``_presidio``); only with the no-model
        #: engine, whose artifacts and context enhancer do nothing per text.
        self._direct: dict[tuple[str, ...], list[EntityRecognizer]] | None = None
        if self._artifacts is not None and isinstance(
            self.analyzer.context_aware_enhancer, NoContextEnhancer
        ):
            self._direct = {}
            for family in self.families:
                key = tuple(sorted(family.entities))
                recognizers = self.analyzer.registry.get_recognizers(
                    language=self.language, entities=list(key)
                )
                for recognizer in recognizers:
                    if not recognizer.is_loaded:
                        recognizer.load()
                        recognizer.is_loaded = True
                self._direct[key] = recognizers
        self._thresholds = {e: settings.threshold(e) for e in self.entities}
        self._min_threshold = min(self._thresholds.values(), default=0.5)
        self._cache: LruCache[Spans] = LruCache(settings.cache_entries)
        self._executor = ThreadPoolExecutor(settings.offload_workers, thread_name_prefix="wardgate-redact")
        #: Longest deny-list term: the stream hold-back must cover it.
        self.longest_term = max((len(t) for terms in settings.deny_lists.values() for t in terms), default=0)
        #: Counters read by the metrics collector (plain ints, written on the loop thread).
        self.presidio_calls = 0
        self.offloaded = 0

    @property
    def cache(self) -> LruCache[Spans]:
        return self._cache

    @property
    def chain(self) -> ChainScanner:
        """The digit-chain regex the families share (``scan.digit_chain``), with the
        chains the work budget's pre-check found kept for the analysis (``scan.py``)."""
        return self._chain

    def warm_up(self) -> float:
        """Run every recognizer once (regex compilation, suffix list load); returns seconds."""
        t0 = time.perf_counter()
        self.detect(WARM_UP_TEXT, prefilter=False)
        return time.perf_counter() - t0

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- detection ---------------------------------------------------------------------------

    def detect(self, text: str, *, prefilter: bool = True, budget: WorkBudget | None = None) -> Spans:
        """All entity spans of ``text``, disjoint and sorted. Not cached; thread-safe.

        Recognizers run on the normalised view (``normalize.py``: fullwidth forms, zero-width
        characters, digit groups split by odd whitespace) and each span is mapped back to the
        original characters. A family's windows are joined with a blank line and analysed in
        one Presidio call: the fixed cost of a call (~50 us) is paid once per family, not once
        per window, and no pattern of a windowed family can match across a line break.
        """
        return finish(self.detect_steps(text, prefilter=prefilter, budget=budget))

    def detect_steps(
        self, text: str, *, prefilter: bool = True, budget: WorkBudget | None = None
    ) -> Generator[None, None, Spans]:
        """``detect`` as steps a request's ``LoopSlice`` can pause between: it yields after
        each family that had work. A text up to ``offload_chars`` is analysed this way on the
        event loop, in slices, instead of in a worker thread: the hand-off to a thread and
        back cost ~1 ms of CPU per text (a 20 KB message: a third of its whole analysis)."""
        if not text:
            return ()
        view = View(text)
        found = yield from self._detect_view(view.text, prefilter, budget)
        if view.identity:
            return found
        return tuple(Span(*view.span(s.start, s.end), s.entity, s.score) for s in found)

    def _detect_view(
        self, text: str, prefilter: bool, budget: WorkBudget | None
    ) -> Generator[None, None, Spans]:
        found: list[Span] = []
        scan = Scan(text, self._chain)
        for family in self.families:
            direct: list[tuple[int, int]] | None = [] if prefilter and family.direct is not None else None
            regions = windows(family, scan, budget, direct) if prefilter else [(0, len(text))]
            if direct:
                entity = _ALIASES.get(next(iter(family.entities)), next(iter(family.entities)))
                # (a, b) + (entity, score) as Spans in C loops: a contact list settles 2,500.
                tail = (entity, _DIRECT_SCORE)
                found.extend(map(_new, repeat(Span), map(operator.add, direct, repeat(tail))))
            if not regions:
                continue
            entities = sorted(family.entities)
            if len(regions) == 1:
                a, b = regions[0]
                found.extend(self._presidio(text[a:b], entities, a))
                yield
                continue
            joined, starts = _join(text, regions)
            for s in self._presidio(joined, entities, 0):
                found.append(
                    Span(
                        _map(s.start, starts, regions),
                        _map(s.end - 1, starts, regions) + 1,
                        s.entity,
                        s.score,
                    )
                )
            yield
        return resolve(extend_wrapped(text, found))

    def _presidio(self, text: str, entities: list[str], offset: int) -> list[Span]:
        self.presidio_calls += 1
        recognizers = self._direct.get(tuple(entities)) if self._direct is not None else None
        if recognizers is not None and self._artifacts is not None:
            # What ``AnalyzerEngine.analyze`` does with the no-model engine, less its fixed
            # cost (~35 us a call: the registry filtered, results tagged and copied): each
            # recognizer, the score floor, Presidio's own duplicate removal.
            results = []
            for recognizer in recognizers:
                found = recognizer.analyze(text=text, entities=entities, nlp_artifacts=self._artifacts)
                if found:
                    results.extend(found)
            floor = self._min_threshold
            results = [r for r in results if r.score >= floor]
            if len(recognizers) > 1 or not getattr(recognizers[0], "DISJOINT_SORTED", False):
                # (A recognizer whose results are already disjoint and sorted, e-mails on a
                # contact list: Presidio's duplicate pass would return them unchanged, ~6 ms.)
                results = EntityRecognizer.remove_duplicates(results)
        else:
            results = self.analyzer.analyze(
                text=text,
                language=self.language,
                entities=entities,
                score_threshold=self._min_threshold,
                nlp_artifacts=self._artifacts,
            )
        th = self._thresholds
        out = []
        for r in results:
            entity = _ALIASES.get(r.entity_type, r.entity_type)
            if r.score >= th.get(entity, 1.1) and r.end > r.start:
                out.append(Span(r.start + offset, r.end + offset, entity, r.score))
        return out

    def budget(self, what: str = "request", *, refuse: bool = True) -> WorkBudget:
        """A fresh work budget for one request or one answer (see budget.py)."""
        st = self.settings
        return WorkBudget(st.max_request_chars, st.max_candidates, st.max_phone_candidates, what, refuse)

    def check_size(self, text: str) -> None:
        if len(text) > self.settings.max_text_chars:
            raise content_too_large(
                f"A text of {len(text)} characters exceeds the {self.settings.max_text_chars} "
                "characters the redaction stage scans (redaction.max_text_chars)."
            )

    def analyze(self, text: str, budget: WorkBudget | None = None) -> Spans:
        """Cached ``detect`` (on the event loop thread); a miss is charged to ``budget``."""
        self.check_size(text)
        key = text_key(text)
        spans = self._cache.get(key)
        if spans is None:
            if budget is not None:
                budget.precheck((text,), self._chain)
            spans = self.detect(text, budget=budget)
            self._cache.put(key, spans)
        elif budget is not None:
            budget.cached(len(spans))
        return spans

    async def analyze_many(
        self, texts: Sequence[str], budget: WorkBudget | None = None, loop_slice: LoopSlice | None = None
    ) -> list[Spans]:
        """Analyse several texts: cache hits cheap, short texts inline, long ones in a thread.

        The texts that are not cache hits are charged to one budget (the request's) *before*
        any of them is analysed, so a request too big or too dense to scan is refused in
        milliseconds. A thread does not make Presidio faster (the GIL), but the event loop
        keeps serving other requests between the worker's bytecodes instead of freezing.
        """
        budget = budget if budget is not None else self.budget()
        out: list[Spans | None] = [None] * len(texts)
        keys: list[bytes | None] = [None] * len(texts)
        todo: list[int] = []
        seen: dict[bytes, int] = {}
        cached = 0
        # Every text of every request passes here (a resent conversation: 20 texts a call),
        # so the loop makes no Python call per text it can avoid: the size check, ``text_key``
        # and the slice's clock test are written out (the same key: a test checks it).
        limit = self.settings.max_text_chars
        get = self._cache.get
        clock = time.perf_counter
        for i, text in enumerate(texts):
            if len(text) > limit:
                self.check_size(text)
            if not text:
                out[i] = ()
                continue
            # ~0.1 ms for 25 KB: ten such texts are a slice
            key = keys[i] = sha256(text.encode("utf-8", "surrogatepass")).digest()
            if loop_slice is not None and clock() >= loop_slice.due:
                await loop_slice.pause()
            if key in seen:  # the same text twice in one request: analyse once
                continue
            seen[key] = i
            hit = get(key)
            if hit is not None:
                out[i] = hit
                cached += len(hit)
            else:
                todo.append(i)
        budget.cached(cached)  # hits are not analysed again, but their values are replaced
        if loop_slice is None:
            budget.precheck((texts[i] for i in todo), self._chain)
        else:  # a request: the loop is handed back between the texts it counts
            await loop_slice.run(budget.precheck_steps([texts[i] for i in todo], self._chain))
        return await self._analyze_todo(texts, todo, keys, out, seen, budget, loop_slice)

    async def _analyze_todo(
        self,
        texts: Sequence[str],
        todo: list[int],
        keys: list[bytes | None],
        out: list[Spans | None],
        seen: dict[bytes, int],
        budget: WorkBudget,
        loop_slice: LoopSlice | None,
    ) -> list[Spans]:
        pending: list[tuple[int, asyncio.Future[Spans]]] = []
        loop = asyncio.get_running_loop()
        loop_slice = loop_slice or LoopSlice()
        for i in todo:
            text = texts[i]
            if len(text) >= self.settings.offload_chars:
                self.offloaded += 1
                detect = functools.partial(self.detect, text, budget=budget)
                pending.append((i, loop.run_in_executor(self._executor, detect)))
            else:  # on the loop, handing it back between families once a slice ran
                out[i] = await loop_slice.run(self.detect_steps(text, budget=budget))
                self._cache.put(keys[i], out[i])  # type: ignore[arg-type]  # keys[i] and out[i] were set for every index in todo
        try:
            for i, fut in pending:
                out[i] = await fut
                self._cache.put(keys[i], out[i])  # type: ignore[arg-type]  # keys[i] and out[i] were set for every index in todo
        finally:
            for _, fut in pending:  # one refused: do not leave the others running unobserved
                fut.cancel()
        for i, dup in enumerate(keys):
            if out[i] is None and dup is not None:
                out[i] = out[seen[dup]]
        return [o if o is not None else () for o in out]


def finish(steps: Generator[None, None, Spans]) -> Spans:
    """Run ``detect_steps`` to the end without pausing."""
    while True:
        try:
            next(steps)
        except StopIteration as done:
            return done.value


#: The score Presidio's phone recognizer gives every number (spans settled without it).
_DIRECT_SCORE = 0.4
#: Internal entity names of recognizers that report another type (see phones.py).
_ALIASES = {LABELLED_PHONE: "PHONE_NUMBER", LABELLED_SECRET: "PASSWORD"}
_SEP = "\n\n"


def _join(text: str, regions: list[tuple[int, int]]) -> tuple[str, list[int]]:
    starts: list[int] = []
    pos = 0
    for a, b in regions:
        starts.append(pos)
        pos += b - a + len(_SEP)
    return _SEP.join(text[a:b] for a, b in regions), starts


def _map(pos: int, starts: list[int], regions: list[tuple[int, int]]) -> int:
    """A position in the joined text -> the same character in the original text."""
    i = bisect.bisect_right(starts, pos) - 1
    a, b = regions[i]
    return min(a + pos - starts[i], b - 1)


#: ``Span(...)`` without the named tuple's Python-level ``__new__`` (thousands per dense text).
_new = tuple.__new__
_START = operator.itemgetter(0)  # Span.start, Span.end
_END = operator.itemgetter(1)


def resolve(spans: list[Span]) -> Spans:
    """Disjoint spans: the higher score wins an overlap, then the longer span, then the earlier.

    Presidio leaves overlaps between different entity types (a Luhn-valid card that is also a
    possible phone number); replacing both would garble the text, so one is chosen here,
    deterministically, before anything is replaced.
    """
    if len(spans) <= 1:
        return tuple(spans)
    ordered = sorted(spans)  # plain tuple order: by range, then entity and score
    # Already disjoint and non-empty (a contact list: only the fast path found anything):
    # what the passes below would return, checked by C loops instead of a Python one.
    firsts, lasts = list(map(_START, ordered)), list(map(_END, ordered))
    if all(map(operator.lt, firsts, lasts)) and all(map(operator.le, lasts, islice(firsts, 1, None))):
        return tuple(ordered)
    # The common case (a CSV of 2,500 phone numbers, each found by two families): spans that
    # overlap only spans of the very same range. The pass below would keep, of each range,
    # the first in its ranking (highest score, then entity) and every range, in start order;
    # that is found here without ranking 2,500 spans through a Python key.
    kept: list[Span] = []
    # Plain tuple order: by range, then entity and score, which the loop does not depend on.
    for s in ordered:
        if s.start >= s.end:
            break
        if kept:
            last = kept[-1]
            if s.start == last.start and s.end == last.end:
                if s.score > last.score or (s.score == last.score and s.entity < last.entity):
                    kept[-1] = s
                continue
            if s.start < last.end:
                break
        kept.append(s)
    else:
        return tuple(kept)
    ranked = sorted(spans, key=lambda s: (-s.score, -(s.end - s.start), s.start, s.entity))
    starts: list[int] = []
    kept = []  # disjoint, sorted by start: only the two neighbours can overlap
    for s in ranked:
        i = bisect.bisect_right(starts, s.start)
        if i > 0 and kept[i - 1].end > s.start:
            continue
        if i < len(kept) and kept[i].start < s.end:
            continue
        starts.insert(i, s.start)
        kept.insert(i, s)
    return tuple(kept)
