"""Build Presidio's ``AnalyzerEngine`` fully offline, with only the recognizers configured.

Offline: ``tldextract`` (Presidio's e-mail validator) downloads the public suffix list on
first use unless ``TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS`` is empty; measured here that was a
logged network error and a ~0.2 s stall, and on a network that drops packets it would hang.
The package ``__init__`` sets it before any Presidio import; it is repeated here so that this
module stays correct on its own.

No model: the official ``NoOpNlpEngine`` (``nlp.engine: no_op``) loads nothing, so nothing
ever calls ``spacy download``. A user with a spaCy/stanza/transformers model installed can
name it in ``nlp`` and list ``PERSON`` / ``LOCATION`` / ``ORGANIZATION`` in ``actions``.
"""

from __future__ import annotations

import os

os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

import re
from pathlib import Path
from typing import Any

from presidio_analyzer import (
    AnalyzerEngine,
    EntityRecognizer,
    PatternRecognizer,
    RecognizerRegistry,
    RecognizerResult,
)
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine, NlpEngineProvider, NoOpNlpEngine
from presidio_analyzer.predefined_recognizers import (
    CryptoRecognizer,
    IpRecognizer,
    UrlRecognizer,
)

from gateway.redaction.config import NER_TYPES, RedactionSettings
from gateway.redaction.emails import UrlAwareEmailRecognizer
from gateway.redaction.glued import GluedCardRecognizer, GluedSsnRecognizer
from gateway.redaction.iban import GroupingIbanRecognizer
from gateway.redaction.phones import FormattedPhoneRecognizer, LabelledPhoneRecognizer
from gateway.redaction.secrets import LABELLED_SECRET, SECRET_PATTERNS, secret_recognizers

#: A dotted quad after one of these words is a document or version number, not an address.
_NOT_AN_ADDRESS_LABEL = re.compile(
    r"(?i)(?<![A-Za-z])(?:sections?|sect?\.|§|chapters?|ch\.|clauses?|articles?|art\.|paragraphs?|para\."
    r"|rules?|steps?|items?|versions?|ver\.|v\.|releases?|build|figures?|fig\.|tables?|appendix|page)"
    r"[ \t]{0,4}$"
)
#: Addresses that identify nobody: "any interface", the broadcast address.
_NOT_AN_ADDRESS = frozenset({"0.0.0.0", "255.255.255.255"})


class AddressIpRecognizer(IpRecognizer):
    """Presidio's IP recognizer without the obvious non-addresses: ``0.0.0.0`` (bind to any
    interface) and section or version numbers (``section 4.2.1.3``, ``version 1.2.0.7``)."""

    def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):  # type: ignore[no-untyped-def]  # Presidio's own signature, untyped upstream
        results = super().analyze(text, entities, nlp_artifacts, regex_flags)
        return [
            r
            for r in results
            if text[r.start : r.end] not in _NOT_AN_ADDRESS
            and not _NOT_AN_ADDRESS_LABEL.search(text, max(0, r.start - 16), r.start)
        ]


_PRESIDIO_PATTERN_TYPES: dict[str, Any] = {
    "EMAIL_ADDRESS": UrlAwareEmailRecognizer,
    "CREDIT_CARD": GluedCardRecognizer,
    "IBAN_CODE": GroupingIbanRecognizer,
    "US_SSN": GluedSsnRecognizer,
    "IP_ADDRESS": AddressIpRecognizer,
    "CRYPTO": CryptoRecognizer,
    "URL": UrlRecognizer,
}

#: A text that exercises every recognizer once, so the first real request does not pay for
#: lazy regex compilation and tldextract's suffix-list load (~0.2 s).
WARM_UP_TEXT = (
    "mail bob.smith@example.com or call +1 415 555 2671 / 020 7946 0958; card 4111 1111 1111 1111, "
    "iban GB82 WEST 1234 5698 7654 32, ssn 219-09-9999, ip 10.1.2.3 and fe80::1, "
    "btc 1BoatSLRHtKNngkdXEeobR76b53LETtpyT, https://example.com/x, Authorization: Bearer abc123def456ghi789 "
    "sk-abcdefghijklmnopqrstu12345 AKIAIOSFODNN7EXAMPLE eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig"
)


class NoContextEnhancer(ContextAwareEnhancer):
    """The context enhancer for the no-model engine: returns the results unchanged.

    Presidio's default lemma enhancer needs lemmas the no-op engine does not produce, so it
    can never raise a score here, yet it deep-copies every result: half of the fixed cost of
    an ``analyze`` call on a short window (measured ~90 of ~170 us).
    """

    def __init__(self) -> None:
        super().__init__(0.0, 0.0, 0, 0)

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        return raw_results


class ConfigError(ValueError):
    """The redaction settings ask for something that cannot be built."""


def known_types(settings: RedactionSettings) -> set[str]:
    """Entity types this build can recognise with the configured NLP engine."""
    types = {
        "PHONE_NUMBER",
        *_PRESIDIO_PATTERN_TYPES,
        *(p.entity for p in SECRET_PATTERNS if p.entity != LABELLED_SECRET),
        *settings.deny_lists,
    }
    if settings.nlp.engine != "no_op":
        types.update(NER_TYPES)
    return types


def build_nlp_engine(settings: RedactionSettings) -> NlpEngine:
    """The no-op engine, or a spaCy model the user installed.

    Presidio's spaCy engine *downloads* a model it does not find (``spacy.cli.download``), and
    its stanza and transformers engines fetch theirs from the network too. The gateway never
    downloads anything: a missing spaCy model is a startup error that says how to install it,
    and the engines that download on their own are not offered.
    """
    nlp = settings.nlp
    if nlp.engine == "no_op":
        return NoOpNlpEngine(models=[{"lang_code": nlp.language, "model_name": "no_op"}])
    if nlp.engine != "spacy":
        raise ConfigError(f"redaction.nlp.engine {nlp.engine!r} is not supported: use no_op or spacy")
    import spacy.util

    for model in nlp.models:
        name = model.get("model_name", "")
        if not (spacy.util.is_package(name) or Path(name).exists()):
            raise ConfigError(
                f"spaCy model {name!r} is not installed; install it yourself "
                f"(python -m spacy download {name}): the gateway never downloads models"
            )
    provider = NlpEngineProvider(nlp_configuration={"nlp_engine_name": "spacy", "models": nlp.models})
    return provider.create_engine()


def build_recognizers(settings: RedactionSettings, wanted: set[str]) -> list[EntityRecognizer]:
    lang = settings.nlp.language
    recognizers: list[EntityRecognizer] = []
    for entity, cls in _PRESIDIO_PATTERN_TYPES.items():
        if entity in wanted:
            recognizers.append(cls(supported_language=lang))
    if "PHONE_NUMBER" in wanted:
        recognizers.append(
            FormattedPhoneRecognizer(
                supported_language=lang,
                supported_regions=tuple(settings.phone_regions),
                leniency=settings.phone_leniency,
            )
        )
        recognizers.append(LabelledPhoneRecognizer(tuple(settings.phone_regions), lang))
    recognizers.extend(secret_recognizers(wanted))
    for name, terms in settings.deny_lists.items():
        if name in wanted:
            recognizers.append(
                PatternRecognizer(
                    supported_entity=name,
                    deny_list=list(terms),
                    supported_language=lang,
                    name=f"DenyList{name.title().replace('_', '')}",
                )
            )
    return recognizers


def build_analyzer(settings: RedactionSettings) -> AnalyzerEngine:
    """The configured engine, without warm-up (see ``RedactionEngine.warm_up``)."""
    wanted = set(settings.actions)
    unknown = wanted - known_types(settings)
    if unknown:
        hint = (
            " (PERSON/LOCATION/ORGANIZATION need an NLP model: set redaction.nlp)"
            if unknown & set(NER_TYPES)
            else ""
        )
        raise ConfigError(
            f"redaction.actions names entity types no recognizer finds: {sorted(unknown)}{hint}"
        )
    lang = settings.nlp.language
    nlp_engine = build_nlp_engine(settings)
    registry = RecognizerRegistry(
        supported_languages=[lang], global_regex_flags=re.DOTALL | re.MULTILINE | re.IGNORECASE
    )
    for recognizer in build_recognizers(settings, wanted):
        registry.add_recognizer(recognizer)
    if settings.nlp.engine != "no_op" and wanted & set(NER_TYPES):
        registry.add_nlp_recognizer(nlp_engine=nlp_engine)
    enhancer = NoContextEnhancer() if isinstance(nlp_engine, NoOpNlpEngine) else None
    return AnalyzerEngine(
        registry=registry, nlp_engine=nlp_engine, supported_languages=[lang], context_aware_enhancer=enhancer
    )


def shared_artifacts(analyzer: AnalyzerEngine, language: str) -> NlpArtifacts | None:
    """With the no-op engine the NLP artifacts do not depend on the text: build them once."""
    if isinstance(analyzer.nlp_engine, NoOpNlpEngine):
        return analyzer.nlp_engine.process_text("", language)
    return None
