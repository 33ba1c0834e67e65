"""IBANs in any case, including the one Presidio misses when a word in capitals follows it.

Presidio's pattern takes up to six more groups of four after the check digits, greedily, and
then only tries dropping its two *optional* trailing groups. In "ES48 6321 7138 4336 3686 4745
FROM ACME" the word ``FROM`` becomes the sixth group, every variant fails the checksum, and
the IBAN goes through unredacted (found by the streaming property test). Here each candidate
is tried from its longest to its shortest prefix that ends between groups (never inside a
group), with Presidio's own checksum and per-country format validation.
"""

from __future__ import annotations

import re

from presidio_analyzer import EntityRecognizer, Pattern, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from presidio_analyzer.predefined_recognizers import IbanRecognizer

#: Upper or lower case: "gb82 west 1234 5698 7654 32" is as much an IBAN (validated
#: upper-cased). Not mixed: a lower-case word after an IBAN is not one of its groups.
_CANDIDATE = re.compile(
    r"(?<![A-Za-z0-9])(?:[A-Z]{2}[0-9]{2}(?:[ -]?[A-Z0-9]){11,40}|[a-z]{2}[0-9]{2}(?:[ -]?[a-z0-9]){11,40})"
)
_MIN_CHARS = 15  # the shortest IBAN (Norway)


class GroupingIbanRecognizer(IbanRecognizer):
    # Set by Presidio's base classes (declared here: their own annotations are not inferable).
    name: str
    patterns: list[Pattern]

    def analyze(
        self,
        text: str,
        entities: list[str],
        nlp_artifacts: NlpArtifacts | None = None,
        regex_flags: int | None = None,
    ) -> list[RecognizerResult]:
        results: list[RecognizerResult] = []
        for m in _CANDIDATE.finditer(text):
            raw = m.group()
            ends = [i + 1 for i, c in enumerate(raw) if c.isalnum()]
            for end in reversed(ends[_MIN_CHARS - 1 :]):
                after = m.start() + end
                if after < len(text) and text[after].isalnum():
                    continue  # would cut a group (or a word) in two
                valid = self.validate_result(raw[:end].upper())
                if valid is False:
                    continue
                score = EntityRecognizer.MAX_SCORE if valid else self.patterns[0].score
                results.append(
                    RecognizerResult(
                        entity_type=self.supported_entities[0],
                        start=m.start(),
                        end=after,
                        score=score,
                        recognition_metadata={
                            RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                            RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                        },
                    )
                )
                break
        return results
