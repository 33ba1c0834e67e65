"""Recall, false positives and speed of detect-secrets' plugins vs our secret recognizers.

    .venv/bin/pip install detect-secrets && .venv/bin/python bench/redaction_secrets_library.py

detect-secrets is not a dependency: this measures it, on the secret lines of the labelled
corpus (tests/data) and of tests/redaction/test_redaction_recognizers.py, and on the clean
lines of both. Its result decided what the gateway uses (gateway/redaction/README.md).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
from detect_secrets.settings import default_settings

from gateway.redaction.component import build
from gateway.redaction.config import SECRET_TYPES, RedactionSettings
from tests.redaction.test_redaction_recognizers import CLEAN, FOUND

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "data" / "redaction_corpus.jsonl"
ENTROPY = ("Base64HighEntropyString", "HexHighEntropyString")


def main() -> None:
    lines = [json.loads(line) for line in CORPUS.read_text().splitlines() if line.strip()]
    secrets = set(SECRET_TYPES)
    positives = [(t, v, e) for t, v, e in FOUND if e in secrets]
    positives += [
        (c["text"], x["value"], x["type"]) for c in lines for x in c["entities"] if x["type"] in secrets
    ]
    clean = CLEAN + [c["text"] for c in lines if not c["entities"]]
    classes = get_mapping_from_secret_type_to_class().values()
    patterns = [cls() for cls in classes if cls.__name__ not in ENTROPY]
    with_entropy = [cls() for cls in classes]

    def detect_secrets(plugins: list) -> Callable[[str], set[str]]:
        def run(text: str) -> set[str]:
            found = set()
            for plugin in plugins:
                for i, line in enumerate(text.splitlines() or [text]):
                    found.update(
                        s.secret_value
                        for s in plugin.analyze_line(filename="x.txt", line=line, line_number=i + 1)
                    )
            return {f for f in found if f}

        return run

    engine = build(RedactionSettings()).engine

    def ours(text: str) -> set[str]:
        return {text[s.start : s.end] for s in engine.detect(text) if s.entity in secrets}

    with default_settings():
        for name, fn in (
            ("detect-secrets 1.5 pattern plugins", detect_secrets(patterns)),
            ("detect-secrets 1.5 + entropy plugins", detect_secrets(with_entropy)),
            ("wardgate recognizers", ours),
        ):
            hits, missed = 0, {}
            for text, value, entity in positives:
                if any(value in f or (f in value and len(f) >= 0.8 * len(value)) for f in fn(text)):
                    hits += 1
                else:
                    missed[entity] = missed.get(entity, 0) + 1
            false_positives = sum(1 for text in clean if fn(text))
            texts = [t for t, _, _ in positives] + clean
            t0 = time.perf_counter()
            for _ in range(3):
                for text in texts:
                    fn(text)
            us = (time.perf_counter() - t0) / (3 * len(texts)) * 1e6
            print(
                f"{name:38} recall {hits}/{len(positives)}  false-positive lines {false_positives}/{len(clean)}"
                f"  {us:7.1f} us/line  missed {missed}"
            )


if __name__ == "__main__":
    main()
