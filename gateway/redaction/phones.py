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

from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE, PhoneNumberType, _number_type_helper

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

    def _valid(self, nsn: str) -> bool:
        if len(nsn) not in self.lengths or not self.pattern.fullmatch(nsn):
            return False
        # phonenumbers' own type check (the last step of is_valid_number): cheap regexes.
        return any(_number_type_helper(nsn, md) != PhoneNumberType.UNKNOWN for md in self.metadata)

    def nsn_ok(self, digits: str) -> bool:
        if self.transforms or self._valid(digits):
            return True
        if self.prefix is not None:
            m = self.prefix.match(digits)
            if m and m.end():
                return self._valid(digits[m.end() :])
        return False


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
    return _Rules(
        cc=str(cc),
        lengths=frozenset(lengths),
        pattern=re.compile("|".join(f"(?:{p})" for p in patterns)),
        prefix=re.compile(npfp) if npfp else None,
        transforms=bool(main.national_prefix_transform_rule),
        metadata=tuple(metadata),
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


def _plus_before(text: str, pos: int) -> bool:
    """A ``+`` shortly before ``pos`` with no digit in between (``+ (44) …``)."""
    for k in range(pos - 1, max(0, pos - 12) - 1, -1):
        c = text[k]
        if c in "+\uff0b":
            return True
        if c.isdigit():
            return False
    return False
