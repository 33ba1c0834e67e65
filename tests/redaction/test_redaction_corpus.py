"""The labelled corpus: recall on every structured type and secret, false positives on clean
look-alikes, and proof that the pre-filter changes nothing (pre-filtered analysis == plain
Presidio on every line and on long mixed texts)."""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import pytest

from gateway.redaction.redactor import Redactor


def _covered(spans: Any, text: str, entity: dict[str, str]) -> bool:
    start = text.find(entity["value"])
    end = start + len(entity["value"])
    return start >= 0 and any(s.entity == entity["type"] and s.start <= start and s.end >= end for s in spans)


def test_corpus_recall_is_total_and_false_positives_at_most_one_percent(
    redactor: Redactor, corpus: list[dict[str, Any]]
) -> None:
    engine = redactor.engine
    labelled = Counter()
    found = Counter()
    misses = []
    clean = [c for c in corpus if not c["entities"]]
    flagged = []
    for case in corpus:
        spans = engine.detect(case["text"])
        for entity in case["entities"]:
            labelled[entity["type"]] += 1
            if _covered(spans, case["text"], entity):
                found[entity["type"]] += 1
            else:
                misses.append(entity["type"])
        if not case["entities"] and spans:
            flagged.append(sorted({s.entity for s in spans}))
    recall = sum(found.values()) / sum(labelled.values())
    fp_rate = len(flagged) / len(clean)
    print(
        f"\nredaction corpus: {len(corpus)} lines, {sum(labelled.values())} labelled values in "
        f"{len(labelled)} types, recall {recall:.2%}; {len(clean)} clean lines, false positives {fp_rate:.2%}"
    )
    for entity_type in sorted(labelled):
        print(f"  {entity_type:<24} {found[entity_type]:>3}/{labelled[entity_type]}")
    assert len(corpus) >= 500 and len(clean) >= 200
    assert len(labelled) >= 17, "every structured type and secret format is in the corpus"
    assert not misses, f"missed: {Counter(misses)}"
    assert fp_rate <= 0.01, f"false positives on clean lines: {flagged}"


def test_prefilter_never_changes_a_result_on_any_corpus_line(
    redactor: Redactor, corpus: list[dict[str, Any]]
) -> None:
    engine = redactor.engine
    differ = [
        c["text"][:60]
        for c in corpus
        if engine.detect(c["text"]) != engine.detect(c["text"], prefilter=False)
    ]
    assert not differ


def _log_line(rng: random.Random) -> str:
    return (
        f"2024-0{rng.randint(1, 9)}-{rng.randint(10, 28)}T{rng.randint(10, 23)}:{rng.randint(10, 59)}:07.{rng.randint(100, 999)}Z "
        f"INFO id={rng.getrandbits(48):x} client=10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)} "
        f"status={rng.choice([200, 404, 500])} bytes={rng.randint(100, 99999999)}"
    )


@pytest.mark.parametrize("seed", range(6))
def test_prefilter_matches_plain_presidio_on_long_mixed_texts(
    redactor: Redactor, corpus: list[dict[str, Any]], seed: int
) -> None:
    rng = random.Random(seed)
    parts: list[str] = []
    size = rng.choice([4_000, 12_000, 20_000])
    while sum(map(len, parts)) < size:
        parts.append(rng.choice(corpus)["text"] if rng.random() < 0.7 else _log_line(rng))
    text = rng.choice([" ", "\n", "\n\n", "; "]).join(parts)
    fast = redactor.engine.detect(text)
    assert fast == redactor.engine.detect(text, prefilter=False)
    assert fast, "the mixed text has entities"


def test_clean_prose_does_not_reach_presidio_at_all(redactor: Redactor) -> None:
    engine = redactor.engine
    before = engine.presidio_calls
    text = (
        "The migration adds a nullable column first, backfills it in batches, then adds the constraint. " * 50
    )
    assert engine.detect(text) == ()
    assert engine.presidio_calls == before
