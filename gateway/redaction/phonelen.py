"""Digit-count bounds of phone numbers, from python-phonenumbers' own metadata: the pre-filter
drops digit chains too short to be any number before anything reads their digits."""

from __future__ import annotations

from functools import cache

from phonenumbers import PhoneMetadata
from phonenumbers.phonenumberutil import COUNTRY_CODE_TO_REGION_CODE


@cache
def min_phone_digits(regions: tuple[str, ...]) -> tuple[int, int]:
    """Fewest digits of a valid phone number: (written with ``+``, written without), from
    phonenumbers' own metadata.

    With ``+CC`` a number is found for every country, so that minimum is over all countries
    (country code + shortest national number: 6 today, e.g. +43 and 4 digits). Without it, a
    number is national to a configured region (its shortest number, 7 for GB) or starts with
    an international prefix (00, 011: two more digits than the ``+`` form).
    """
    with_plus = 99
    for cc, region_codes in COUNTRY_CODE_TO_REGION_CODE.items():
        for region in region_codes:
            md = PhoneMetadata.metadata_for_region_or_calling_code(cc, region)
            if md is not None and md.general_desc is not None and md.general_desc.possible_length:
                with_plus = min(with_plus, len(str(cc)) + min(md.general_desc.possible_length))
    without = with_plus + 2
    for region in regions:
        md = PhoneMetadata.metadata_for_region(region)
        if md is None or md.general_desc is None or not md.general_desc.possible_length:
            return (1, 1)  # unknown region: no safe lower bound, every digit triggers
        without = min(without, min(md.general_desc.possible_length))
    return (max(1, with_plus), max(1, without))
