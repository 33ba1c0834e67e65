"""Settings for PII and secret redaction (see gateway/redaction/).

Every entity type the gateway looks for is a key of ``actions``; a type that is not listed
is not detected at all (its recognizer is not loaded), so the list is also the cost knob.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator


class Action(StrEnum):
    """What happens to a detected value.

    ``redact`` replaces it by a placeholder (``<EMAIL_ADDRESS_1>``; the same value gets the same
    placeholder within a request); ``restore`` does the same and puts the value back where the
    model's answer repeats the placeholder, for the same caller; ``mask`` overwrites it with
    ``mask_char``; ``hash`` replaces it by a salted SHA-256 (stable across requests and
    replicas when ``hash_salt`` is set); ``block`` refuses the request (400); ``allow`` leaves
    it untouched but still counts it in the ``pii`` summary, so a policy can decide on it.
    """

    REDACT = "redact"
    RESTORE = "restore"
    MASK = "mask"
    HASH = "hash"
    BLOCK = "block"
    ALLOW = "allow"


#: Pattern-based PII types Presidio ships (no model needed).
PII_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "US_SSN", "IP_ADDRESS", "CRYPTO")
#: Our own secret recognizers (gateway/redaction/secrets.py).
SECRET_TYPES = (
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "GITHUB_TOKEN",
    "SLACK_TOKEN",
    "JWT",
    "PRIVATE_KEY",
    "BEARER_TOKEN",
    "WARDGATE_KEY",
    "GOOGLE_API_KEY",
    "STRIPE_API_KEY",
    "BASIC_AUTH",
    "PASSWORD",
)
#: Found only by an NER model (``nlp.engine`` other than ``no_op``).
NER_TYPES = ("PERSON", "LOCATION", "ORGANIZATION")
#: Values a model could misuse in a tool call it writes (a card in ``send_email``, an IBAN in
#: ``transfer``): not restored into tool-call arguments unless ``tool_arguments: true``.
NO_TOOL_RESTORE_TYPES = ("CREDIT_CARD", "IBAN_CODE", "US_SSN", "CRYPTO")


class DirectionalAction(BaseModel):
    """``{prompt: restore, answer: allow, tool_arguments: false}``: an action per direction.

    ``prompt`` applies to what the caller sends (``restore`` makes the value restorable);
    ``answer`` to values the model's answer brings itself (default: as ``prompt``; ``block``
    and ``restore`` mean ``redact`` there: it is too late to refuse and nothing in an answer
    is the caller's to get back). ``tool_arguments`` says whether the caller's own values are
    restored into the tool calls the model writes (default: not for secrets, cards, IBANs,
    SSNs and crypto addresses, see ``NO_TOOL_RESTORE_TYPES``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    prompt: Action
    answer: Action | None = None
    tool_arguments: bool | None = None


_DIRECTION_KEYS = frozenset(DirectionalAction.model_fields)
_ACTION_NAMES = ", ".join(a.value for a in Action)


def _check_action(entity: str, where: str, value: Any) -> None:
    if isinstance(value, Action):
        return
    if not isinstance(value, str) or value not in {a.value for a in Action}:
        raise ValueError(f"actions.{entity}{where}: {value!r} is not an action (one of {_ACTION_NAMES})")


def check_actions(raw: Any) -> Any:
    """Clear errors for ``actions`` before pydantic's union errors (which list every branch)."""
    if not isinstance(raw, dict):
        return raw
    for entity, value in raw.items():
        if isinstance(value, DirectionalAction):
            continue
        if isinstance(value, dict):
            unknown = sorted(set(value) - _DIRECTION_KEYS)
            if unknown:
                raise ValueError(
                    f"actions.{entity}: unknown keys {unknown} (allowed: prompt, answer, tool_arguments)"
                )
            if "prompt" not in value:
                raise ValueError(f"actions.{entity}: 'prompt' is required in the per-direction form")
            _check_action(entity, ".prompt", value["prompt"])
            if value.get("answer") is not None:
                _check_action(entity, ".answer", value["answer"])
            if value.get("tool_arguments") is not None and not isinstance(value["tool_arguments"], bool):
                raise ValueError(f"actions.{entity}.tool_arguments must be true or false")
        else:
            _check_action(entity, "", value)
    return raw


def _default_actions() -> dict[str, Action | DirectionalAction]:
    # PII goes back to its owner in the answer; a secret never comes back, even to its owner,
    # because answers end up in chat logs and terminals.
    actions: dict[str, Action | DirectionalAction] = {t: Action.RESTORE for t in PII_TYPES}
    actions.update({t: Action.REDACT for t in SECRET_TYPES})
    return actions


def _default_thresholds() -> dict[str, float]:
    # Chosen per type rather than one global cut-off:
    # - PHONE_NUMBER: Presidio scores every match 0.4 (phonenumbers already validated it for a
    #   configured region), so a 0.5 global threshold would silently drop every phone number.
    # - US_SSN: 0.5 keeps the separated form (123-45-6789, score 0.5) and our labelled form
    #   ("SSN: 123456789", 0.6) and drops Presidio's "very weak" 0.05 patterns (any 9 digits,
    #   5-4 digits), which fire on order numbers and ZIP+4 codes.
    # - IP_ADDRESS: 0.6 keeps v4/v6 addresses and drops the bare "::" (0.1).
    # - CREDIT_CARD / IBAN_CODE / CRYPTO / EMAIL_ADDRESS: checksum- or TLD-validated matches
    #   score 1.0 and failed ones 0, so 0.5 only separates valid from invalid.
    return {"PHONE_NUMBER": 0.4, "US_SSN": 0.5, "IP_ADDRESS": 0.6, "DEFAULT": 0.5}


class NlpSettings(BaseModel):
    """The NLP engine behind Presidio. ``no_op`` loads no model (pattern recognizers only).

    To find names, places and organisations, install a spaCy model yourself and set e.g.
    ``engine: spacy`` and ``models: [{lang_code: en, model_name: en_core_web_lg}]``, then list
    ``PERSON`` / ``LOCATION`` / ``ORGANIZATION`` in ``actions``. The gateway never downloads one.
    """

    engine: str = "no_op"
    models: list[dict[str, str]] = Field(default_factory=lambda: [{"lang_code": "en", "model_name": "no_op"}])
    language: str = "en"


class RedactionSettings(BaseModel):
    enabled: bool = True
    #: Entity type -> action, for both directions (``EMAIL_ADDRESS: restore``) or per direction
    #: (``{prompt: restore, answer: allow, tool_arguments: false}``, see ``DirectionalAction``).
    #: Types not listed are not detected.
    actions: dict[str, Action | DirectionalAction] = Field(default_factory=_default_actions)
    #: Minimum score per entity type; ``DEFAULT`` applies to types not listed.
    thresholds: dict[str, float] = Field(default_factory=_default_thresholds)
    #: Regions for numbers written without a country code (``+44 …`` is found for any country).
    #: Each region costs a full pass of python-phonenumbers; Presidio's 8 defaults made it ~80%
    #: of the analysis time.
    phone_regions: list[str] = Field(default_factory=lambda: ["US", "GB"])
    #: python-phonenumbers leniency, 0 (possible) .. 3 (exact grouping). 2 = valid for its region
    #: *and* digit groups as the region writes them: with 1, order numbers such as
    #: "ORD-2024-894349" were US numbers (2% false positives on the corpus); with 2 none were,
    #: and every phone format in the corpus (spaced, dotted, dashed, bracketed, +CC, ext.) still is.
    phone_leniency: int = Field(default=2, ge=0, le=3)
    #: Extra entity types from word lists, e.g. ``{"PROJECT_CODENAME": ["Bluebird", "Nightjar"]}``.
    #: Matched case-insensitively on word boundaries; default action ``redact``.
    deny_lists: dict[str, list[str]] = Field(default_factory=dict)
    #: Kill switch: when false, ``restore`` behaves like ``redact`` (nothing is put back).
    restore: bool = True
    #: Salt for ``hash`` (>= 16 characters). Unset: a random salt per process, so hashes are
    #: stable only within one process; set it for stable hashes across restarts and replicas.
    hash_salt: SecretStr | None = None
    mask_char: str = "*"
    #: Characters left visible at the end of a masked value, per type (e.g. a card's last 4).
    mask_keep_last: dict[str, int] = Field(default_factory=lambda: {"CREDIT_CARD": 4})
    #: Scan the model's answer too (new PII/secrets in it are redacted for the client).
    scan_output: bool = True
    nlp: NlpSettings = Field(default_factory=NlpSettings)
    #: In-process LRU of analysis results keyed by content hash (agents resend the whole
    #: conversation on every call, so only new messages are analysed).
    cache_entries: int = Field(default=8192, ge=0)
    #: Texts at least this long are analysed in a worker thread, so one long prompt does not
    #: stall the event loop for every other request; shorter ones on the loop, handing it back
    #: between recognizer families. A thread does not shorten the loop's waits below that:
    #: it holds the GIL for up to the switch interval (5 ms) whenever the loop wants it, and
    #: the hand-off cost ~1 ms of CPU a text (~11% of a 57 KB contact list's, py-spy). The
    #: longest family step of a 64 KB text is about that interval (its phone numbers).
    offload_chars: int = Field(default=65536, ge=0)
    offload_workers: int = Field(default=2, ge=1)
    #: A single text longer than this is refused with 413 ``content_too_large``.
    max_text_chars: int = Field(default=2_000_000, ge=1)
    #: The work budget of one request, across all its fields, and of one whole answer
    #: (``budget.py``; an answer going over is only counted: it is paid for, so delivered). Characters of new text (cache hits are not scanned again); more is 413
    #: ``content_too_large``, checked before anything is analysed. Prose costs ~0.1 us a
    #: character here: the default bounds a request at ~50-100 ms of scanning.
    max_request_chars: int = Field(default=1_048_576, ge=1)
    #: Members and elements of the request's arrays and objects the walk visits (every one
    #: costs ~1-2 us, a string more); more is 400 ``content_too_complex``, refused while
    #: walking. A 4 MB body holds a million (``["a","a",…]``: seconds before); an agent's
    #: request with 2,000 messages and 128 tool schemas holds a few tens of thousands.
    max_request_values: int = Field(default=50_000, ge=1)
    #: Candidates (digit chains, e-mail/IP/IBAN triggers) per request or answer; more is 400
    #: ``content_too_complex``, a rough count refused before any analysis. A standard-format
    #: North American number costs ~8-30 us; a 2,500-row contact list fits. The values of a
    #: text already analysed (a cache hit) are charged 8 to a candidate: they are replaced.
    max_candidates: int = Field(default=6000, ge=1)
    #: Phone candidates that need python-phonenumbers' matcher (other formats, invalid-looking
    #: numbers: ~0.2-0.8 ms each with 2 regions) per request or answer; more is 400
    #: ``content_too_complex``. 10 messages x 1,999 such numbers took 3.2-3.7 s before.
    max_phone_candidates: int = Field(default=1000, ge=1)
    #: Streaming: characters held back at the end of a text stream until they can no longer be
    #: part of a match (at least the longest pattern that may contain whitespace; measured: 16
    #: leaked the first group of a spaced IBAN, 64 leaked nothing). Raised automatically to
    #: cover the longest deny-list term.
    stream_holdback: int = Field(default=64, ge=32)
    #: Streaming: already released text kept (never re-sent) as left context for the patterns,
    #: whitespace or not. Raised automatically to cover every label a recognizer reads before
    #: its value (``"SecretAccessKey":``, ``SSN:``, ``password=``, ``call``): 128.
    stream_context: int = Field(default=96, ge=32)
    #: Streaming: once text flows, analyse (and release) every this many new characters. The
    #: first text still goes out after hold-back + 64; later text comes in bursts of about this
    #: size. Each analysis re-reads the context and the hold-back, so a smaller step costs more
    #: CPU (a 2 KB answer in 3-character deltas: ~16 analyses at 128, ~32 at 64).
    stream_step: int = Field(default=128, ge=16)
    #: Streaming: a run with no whitespace is held until this size, then released anyway (a
    #: token longer than this is not a secret format we know).
    stream_max_pending: int = Field(default=16384, ge=256)
    #: Analysis errors refuse the request (400) instead of letting unscanned text through.
    fail_closed: bool = True
    #: A string in a field the table (fields.py) does not know: ``scan`` it (default, so a new
    #: provider field is never a silent bypass), ``pass`` it (counted as unscanned) or
    #: ``refuse`` the request (400 ``unscannable_content`` naming the field).
    unknown_fields: Literal["scan", "pass", "refuse"] = "scan"
    #: Values redaction cannot read (base64 images, audio and files, encrypted reasoning,
    #: token ids, ``data:`` URLs): ``pass`` (counted as unscanned) or ``refuse`` (400).
    opaque_fields: Literal["pass", "refuse"] = "pass"

    @field_validator("actions", mode="before")
    @classmethod
    def _check_actions(cls, v: Any) -> Any:
        return check_actions(v)

    @field_validator("thresholds")
    @classmethod
    def _check_thresholds(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: s for k, s in v.items() if not 0.0 <= s <= 1.0}
        if bad:
            raise ValueError(f"thresholds must be within 0..1: {bad}")
        return v

    @field_validator("phone_regions")
    @classmethod
    def _upper_regions(cls, v: list[str]) -> list[str]:
        return [r.upper() for r in v]

    @field_validator("mask_char")
    @classmethod
    def _one_char(cls, v: str) -> str:
        if len(v) != 1:
            raise ValueError("mask_char must be exactly one character")
        return v

    @model_validator(mode="after")
    def _check(self) -> RedactionSettings:
        if self.hash_salt is not None and len(self.hash_salt.get_secret_value()) < 16:
            raise ValueError("hash_salt must be at least 16 characters")
        for name, terms in self.deny_lists.items():
            if not name.isupper() or not name.replace("_", "").isalnum():
                raise ValueError(f"deny-list name {name!r} must look like an entity type (UPPER_CASE)")
            if not all(isinstance(t, str) and t.strip() for t in terms):
                raise ValueError(f"deny-list {name!r} has an empty term")
            self.actions.setdefault(name, Action.REDACT)
        return self

    def prompt_action(self, entity_type: str) -> Action:
        return prompt_action(self.actions.get(entity_type, Action.ALLOW))

    def threshold(self, entity_type: str) -> float:
        return self.thresholds.get(entity_type, self.thresholds.get("DEFAULT", 0.5))


def prompt_action(spec: Action | DirectionalAction) -> Action:
    return spec.prompt if isinstance(spec, DirectionalAction) else spec


def answer_action(spec: Action | DirectionalAction) -> Action:
    """What a value the answer brings itself gets: never ``block`` or ``restore``."""
    action = spec.answer or spec.prompt if isinstance(spec, DirectionalAction) else spec
    return Action.REDACT if action in (Action.BLOCK, Action.RESTORE) else action


def restores_into_tool_arguments(entity: str, spec: Action | DirectionalAction) -> bool:
    if isinstance(spec, DirectionalAction) and spec.tool_arguments is not None:
        return spec.tool_arguments
    return entity not in NO_TOOL_RESTORE_TYPES and entity not in SECRET_TYPES
