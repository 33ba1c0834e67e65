"""Which digit chains could python-phonenumbers accept as a valid number? A sound pre-check.

python-phonenumbers costs 150-600 us per candidate and region, whatever the outcome, and
agent traffic is full of digit chains that cannot be phone numbers (dates, IP addresses,
timestamps, ids). A number it accepts at leniency VALID or stricter is *valid*, so its
national significant number (NSN) has one of the lengths its country's metadata allows.
This module checks only that necessary condition, from the same metadata and the same
prefix rules ``phonenumbers.parse`` applies, on every way a chain can be split into a
candidate at its digit-block boundaries (the matcher's candidates and inner matches all
start and end at such boundaries):

* written with ``+``: country code (1-3 digits), then the NSN, optionally after the
  destination's national prefix (``+44 (0)20 …``);
* in every case the NSN must have a length the country allows, fullmatch its general
  pattern and be of some number type (phonenumbers' own ``_number_type_helper``, the last
  step of ``is_valid_number``: a few cheap regexes, no parsing);
* otherwise, for each configured region: the NSN alone, after the region's national prefix
  (``0``, ``1``), after its country code, or an international number after its IDD (``00``,
  ``011``).

A region whose national-prefix rule rewrites digits (a transform rule: Argentina, Brazil…)
is not modelled: the check then answers "possible" for it. The hypothesis test compares this
check with phonenumbers itself on random chains: every number phonenumbers finds passes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache

from phonenumbers import Leniency, PhoneMetadata, PhoneNumberMatcher
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, PhoneNumberType, _number_type_helper
from presidio_analyzer import EntityRecognizer, LocalRecognizer, RecognizerResult
from presidio_analyzer.predefined_recognizers import PhoneRecognizer

_BLOCK = re.compile(r"\d+")
#: Chains with more blocks than this are not split (every split would be tried): accept.
_MAX_BLOCKS = 24
#: Longest digit string a number can be written with (IDD + country code + 17-digit NSN).
_MAX_DIGITS = 24


@dataclass(frozen=True, slots=True)
class _Rules:
    """What ``is_valid_number`` requires of a national number of one country code."""

    cc: str
    lengths: frozenset[int]
    #: Union of the general descriptions of every region sharing the code (fullmatch).
    pattern: re.Pattern[str]
    #: The national prefix ``parse`` strips (``0``, ``1``, ``0|180020``); None if none.
    prefix: re.Pattern[str] | None
    #: A transform rule rewrites digits while stripping: not modelled, always "possible".
    transforms: bool
    metadata: tuple[PhoneMetadata, ...]
    #: Union of every number type's pattern of every region sharing the code: a quick
    #: necessary condition before the exact per-region check (NANP has 25 regions x 10 types:
    #: an invalid +1 number cost ~400 us through the exact loop alone).
    types: re.Pattern[str] | None = None

    def _valid(self, nsn: str) -> bool:
        if len(nsn) not in self.lengths or not self.pattern.fullmatch(nsn):
            return False
        if self.types is not None and not self.types.fullmatch(nsn):
            return False
        # phonenumbers' own type check (the last step of is_valid_number): cheap regexes.
        return any(_number_type_helper(nsn, md) != PhoneNumberType.UNKNOWN for md in self.metadata)

    def valid_by_type(self, nsn: str) -> bool:
        """``_valid`` without the per-region loop: the number fits the code's general pattern
        and some region's type pattern. A type pattern is a subset of its own region's
        general one, so this is phonenumbers' validity for codes whose regions do not share
        numbers (NANP area codes belong to one region each); the fast path's property test
        compares it with the matcher (~25 us -> ~3 us a number)."""
        return (
            len(nsn) in self.lengths
            and self.pattern.fullmatch(nsn) is not None
            and self.types is not None
            and self.types.fullmatch(nsn) is not None
        )

    def valid_by_type_regex(self) -> re.Pattern[str] | None:
        """``valid_by_type`` as one regex to ``fullmatch``: lengths, general pattern, types."""
        if self.types is None:
            return None
        lengths = "|".join(rf"\d{{{n}}}" for n in sorted(self.lengths))
        general, types = self.pattern.pattern, self.types.pattern
        return re.compile(rf"(?=(?:{lengths})\Z)(?=(?:{general})\Z)(?:{types})")

    def nsn_ok(self, digits: str) -> bool:
        if self.transforms or self._valid(digits):
            return True
        if self.prefix is not None:
            m = self.prefix.match(digits)
            if m and m.end():
                return self._valid(digits[m.end() :])
        return False


_TYPE_FIELDS = (
    "fixed_line",
    "mobile",
    "toll_free",
    "premium_rate",
    "shared_cost",
    "personal_number",
    "voip",
    "pager",
    "uan",
    "voicemail",
)


@cache
def _rules(cc: int) -> _Rules | None:
    regions = COUNTRY_CODE_TO_REGION_CODE.get(cc, ())
    lengths: set[int] = set()
    patterns: list[str] = []
    main: PhoneMetadata | None = None
    metadata: list[PhoneMetadata] = []
    for region in regions:
        md = PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
        if md is None or md.general_desc is None:
            continue
        main = main or md
        metadata.append(md)
        lengths.update(md.general_desc.possible_length)
        if md.general_desc.national_number_pattern:
            patterns.append(md.general_desc.national_number_pattern)
    if main is None or not patterns:
        return None
    npfp = main.national_prefix_for_parsing
    type_patterns = [
        desc.national_number_pattern
        for md in metadata
        for desc in (getattr(md, field) for field in _TYPE_FIELDS)
        if desc is not None and desc.national_number_pattern
    ]
    return _Rules(
        cc=str(cc),
        lengths=frozenset(lengths),
        pattern=re.compile("|".join(f"(?:{p})" for p in patterns)),
        prefix=re.compile(npfp) if npfp else None,
        transforms=bool(main.national_prefix_transform_rule),
        metadata=tuple(metadata),
        types=re.compile("|".join(f"(?:{p})" for p in type_patterns)) if type_patterns else None,
    )


def _international(digits: str) -> bool:
    for k in (1, 2, 3):
        if len(digits) <= k:
            break
        rules = _rules(int(digits[:k])) if digits[0] != "0" else None
        if rules is not None and rules.nsn_ok(digits[k:]):
            return True
    return False


class PhonePrecheck:
    """``possible(text, start, end)``: could the chain ``text[start:end]`` hold a valid number?"""

    def __init__(self, regions: tuple[str, ...], leniency: int) -> None:
        #: POSSIBLE (0) accepts numbers that are not valid; nothing is pre-checked then.
        self.enabled = leniency >= 1
        self._national: list[tuple[_Rules, re.Pattern[str] | None]] = []
        for region in regions:
            md = PhoneMetadata.metadata_for_region(region)
            rules = _rules(md.country_code) if md is not None else None
            if md is None or rules is None:
                self.enabled = False  # an unknown region: no safe rule
                continue
            idd = re.compile(md.international_prefix) if md.international_prefix else None
            self._national.append((rules, idd))
        #: A configured region rewrites digits while stripping its national prefix (a transform
        #: rule, not modelled): no bound on a national number's written digits is assumed.
        self.transforms = any(rules.transforms for rules, _ in self._national)
        #: Per process, bounded: the same chains (dates, versions, ids) recur across requests.
        self._blocks_possible = lru_cache(maxsize=16384)(self._check_blocks)

    def _national_ok(self, digits: str) -> bool:
        for rules, idd in self._national:
            if rules.nsn_ok(digits):
                return True
            if digits.startswith(rules.cc) and rules.nsn_ok(digits[len(rules.cc) :]):
                return True
            if idd is not None:
                m = idd.match(digits)
                if m and m.end() and _international(digits[m.end() :]):
                    return True
        return False

    def _check_blocks(self, blocks: tuple[str, ...], plus: bool) -> bool:
        if len(blocks) > _MAX_BLOCKS:
            return True
        for i in range(len(blocks)):
            digits = ""
            for j in range(i, len(blocks)):
                digits += blocks[j]
                if len(digits) > _MAX_DIGITS:
                    break
                if (plus and i == 0 and _international(digits)) or self._national_ok(digits):
                    return True
        return False

    def possible(self, text: str, start: int, end: int) -> bool:
        if not self.enabled:
            return True
        chain = text[start:end]
        blocks = tuple(_BLOCK.findall(chain))
        if not blocks:
            return False
        # "+" is not phone punctuation, so it can only lead the chain (in the match or just before it).
        lead = chain[: chain.index(blocks[0])]
        plus = "+" in lead or "\uff0b" in lead or _plus_before(text, start)
        return self._blocks_possible(blocks, plus)

    def possible_chain(self, text: str, start: int, end: int, plus: bool) -> bool:
        """``possible`` for a digit chain of the pre-filter (it starts with a digit, so a
        ``+`` can only stand before it: ``plus`` is ``_plus_before(text, start)``), without
        copying it out of the text."""
        if not self.enabled:
            return True
        blocks = tuple(_BLOCK.findall(text, start, end))
        return bool(blocks) and self._blocks_possible(blocks, plus)


def _plus_before(text: str, pos: int) -> bool:
    """A ``+`` shortly before ``pos`` with no digit in between (``+ (44) …``)."""
    lo = max(0, pos - 12)
    k = max(text.rfind("+", lo, pos), text.rfind("\uff0b", lo, pos))
    if k < 0:
        return False
    return not any(c.isdigit() for c in text[k + 1 : pos])


# -- recognizers -------------------------------------------------------------------------------

#: Words that say "what follows is a phone number". Not "number" or "contact" alone: order
#: numbers and contact ids follow those.
PHONE_LABEL = re.compile(
    r"(?i)(?<![A-Za-z])(?:call(?:ed|ing)?|phone[sd]?|tel(?:ephone)?|mobile|cell(?:phone)?|fax|whats ?app"
    r"|sms|text(?:ed)? me|ph|mob|dial(?:led)?|ring|(?:my|our|your|his|her|their) (?:number|no\.?|#)"
    r"|(?:reach|contact) (?:me|us|him|her|them) (?:at|on))(?![A-Za-z])"
)
#: The number must begin this close after its label ("Call me at (355) …", "phone: …").
LABEL_GAP = 24
#: The pre-filter looks for a whole label within this many characters before a chain.
LABEL_LOOKBACK = LABEL_GAP + 24
#: A possible number is at most this long as written (``+1 (415) 555-2671 ext. 12345``).
_NUMBER_SPAN = 40
LABELLED_PHONE = "PHONE_NUMBER_LABELLED"
_NUMBERISH = frozenset("0123456789-. ()/")
#: Shapes a label does not make a phone number: dates ("call on 2024-05-06") and times.
_DATE_OR_TIME = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}|\d{1,2}:\d{2}")
#: Fewest digits of a labelled number: a 7-digit local number ("phone: 555-1234"); shorter
#: "possible" numbers are short codes and durations ("api call took 1234 ms").
_MIN_LABELLED_DIGITS = 7


#: A bare run after a label is a whole national number or nothing ("call took 1234567 us").
_MIN_LABELLED_BARE_DIGITS = 10
MIN_LABELLED_DIGITS = _MIN_LABELLED_DIGITS


#: Substrings one of which every label contains (lower case): a cheap test before the regex.
LABEL_KEYS = (
    "cal",
    "ph",
    "tel",
    "mob",
    "cell",
    "fax",
    "whats",
    "sms",
    "text",
    "dial",
    "ring",
    "number",
    "no",
    "#",
    "reach",
    "contact",
)
#: Matched against the lower-cased text: an IGNORECASE alternation is ~13x slower in ``re``.
LABEL_KEY = re.compile("|".join(re.escape(k) for k in LABEL_KEYS))


def label_before(text: str, start: int, end: int) -> bool:
    """A phone label ends at most ``LABEL_GAP`` characters before the chain (pre-filter)."""
    lo = max(0, start - LABEL_LOOKBACK)
    if LABEL_KEY.search(text[lo:start].lower()) is None:
        return False
    return PHONE_LABEL.search(text, lo, start) is not None


def _phone_shaped(raw: str) -> bool:
    digits = sum(c.isdigit() for c in raw)
    least = _MIN_LABELLED_BARE_DIGITS if raw.strip("()[] ").isdigit() else _MIN_LABELLED_DIGITS
    return digits >= least and not _DATE_OR_TIME.search(raw)


def bare_digits(text: str, start: int, end: int) -> bool:
    """One unformatted digit run (an id, an amount, an epoch), no ``+`` before it."""
    value = text[start:end].strip("()[] ")
    if not value.isdigit():
        return False
    return not _plus_before(text, start) and "+" not in text[start:end]


class FormattedPhoneRecognizer(PhoneRecognizer):
    """Presidio's phone recognizer (a *valid* number for a configured region), minus bare
    digit runs: a 10-digit id in JSON is a valid US number by length and prefix, but without
    a label it is an id (a third of 2,500 random ids became phone placeholders). A bare run
    after a phone label is found by ``LabelledPhoneRecognizer``."""

    def analyze(self, text, entities, nlp_artifacts=None):  # type: ignore[no-untyped-def]  # Presidio's own signature, untyped upstream
        # Presidio's analyze, less what nothing reads: it parses every match again (and looks
        # up its region) for an explanation text the analyzer then drops (~35% of a call).
        name: str = self.name  # type: ignore[has-type]  # set by Presidio's untyped base class
        leniency = self.leniency if self.leniency is not None else Leniency.VALID
        results = [
            RecognizerResult(
                entity_type=self.supported_entities[0],
                start=match.start,
                end=match.end,
                score=self.SCORE,
                recognition_metadata={
                    RecognizerResult.RECOGNIZER_NAME_KEY: name,
                    RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                },
            )
            for region in self.supported_regions
            for match in PhoneNumberMatcher(text, region, leniency=leniency)
            if not bare_digits(text, match.start, match.end)
        ]
        return EntityRecognizer.remove_duplicates(results)


class LabelledPhoneRecognizer(LocalRecognizer):
    """A *possible* number (right length for a configured region, or ``+CC``) shortly after a
    phone label: "Call me at (355) 852-9749" (area code 355 is unassigned, so not valid, but a
    phone number to anyone reading it), "phone: 4155552671". Reported as
    ``PHONE_NUMBER_LABELLED`` so the pre-filter can run it on label windows only; the engine
    renames it ``PHONE_NUMBER``."""

    name: str  # set by Presidio's base class (declared here: its own annotation is not inferable)

    def __init__(self, regions: tuple[str, ...], language: str) -> None:
        self._regions = regions
        super().__init__(
            supported_entities=[LABELLED_PHONE],
            supported_language=language,
            name="WardgateLabelledPhoneRecognizer",
        )

    def load(self) -> None:
        """Nothing to load."""

    def analyze(self, text, entities, nlp_artifacts=None):  # type: ignore[no-untyped-def]  # Presidio's own signature, untyped upstream
        results: list[RecognizerResult] = []
        seen: set[tuple[int, int]] = set()
        for label in PHONE_LABEL.finditer(text):
            lo = label.end()
            hi = min(len(text), lo + LABEL_GAP + _NUMBER_SPAN)
            while hi < len(text) and hi - lo < 2 * (LABEL_GAP + _NUMBER_SPAN) and text[hi] in _NUMBERISH:
                hi += 1  # never cut a number in two
            window = text[lo:hi]
            for region in self._regions:
                for m in PhoneNumberMatcher(window, region, leniency=Leniency.POSSIBLE):
                    if m.start > LABEL_GAP or not _phone_shaped(m.raw_string):
                        continue
                    span = (lo + m.start, lo + m.end)
                    if span in seen:
                        continue
                    seen.add(span)
                    results.append(
                        RecognizerResult(
                            entity_type=LABELLED_PHONE,
                            start=span[0],
                            end=span[1],
                            score=0.4,
                            recognition_metadata={
                                RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id,
                            },
                        )
                    )
        return results
