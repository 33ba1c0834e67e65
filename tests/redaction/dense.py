"""Dense inputs shared by the tests and bench/redaction.py: a contact list, a JSON of ids,
and the hostile shape of issue 17 (many messages full of phone numbers)."""

from __future__ import annotations

import json
import random

#: Area codes in service, so the numbers are valid (a real export has valid numbers).
AREAS = (212, 213, 310, 312, 415, 646, 718, 202, 305, 404, 617, 702, 206, 303, 512, 713, 214, 602, 503, 808)
FIRST = ("Ann", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal", "Ivy", "Jo")
LAST = ("Lee", "Chan", "Diaz", "Roe", "Kim", "Li", "Ng", "Ito", "Wu", "Fox")


def phone(rng: random.Random) -> str:
    area, exchange, line = rng.choice(AREAS), rng.randint(200, 999), rng.randint(0, 9999)
    shape = rng.randrange(3)
    if shape == 0:
        return f"({area}) {exchange}-{line:04d}"
    if shape == 1:
        return f"{area}-{exchange}-{line:04d}"
    return f"+1 {area} {exchange} {line:04d}"


def contacts_csv(rows: int = 2500, seed: int = 1) -> tuple[str, list[str]]:
    """``name,phone`` rows (~57 KB for 2,500); also returns the phone numbers."""
    rng = random.Random(seed)
    phones = [phone(rng) for _ in range(rows)]
    lines = ["name,phone"] + [f"{rng.choice(FIRST)} {rng.choice(LAST)},{p}" for p in phones]
    return "\n".join(lines), phones


#: Mail domains of a real export: a few providers, company domains, multi-part suffixes.
DOMAINS = ("gmail.com", "yahoo.co.uk", "acme.io", "example.org", "mail.co.jp", "corp.example.com", "web.de")


def contacts_emails_csv(rows: int = 1300, seed: int = 4) -> tuple[str, list[str]]:
    """``name,email,phone`` rows (~57 KB for 1,300, the size of ``contacts_csv``'s 2,500):
    the common shape of a contact export; also returns the addresses."""
    rng = random.Random(seed)
    lines = ["name,email,phone"]
    emails = []
    for i in range(rows):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        email = f"{first.lower()}.{last.lower()}{i}@{rng.choice(DOMAINS)}"
        emails.append(email)
        lines.append(f"{first} {last},{email},{phone(rng)}")
    return "\n".join(lines), emails


def ids_json(count: int = 2500, seed: int = 2) -> tuple[str, list[int]]:
    """A JSON document of ten-digit ids (many are valid US numbers by shape: they are ids)."""
    rng = random.Random(seed)
    ids = [rng.randint(2_000_000_000, 9_999_999_999) for _ in range(count)]
    return json.dumps({"items": [{"id": i} for i in ids]}, separators=(",", ":")), ids


def hostile_messages(messages: int = 10, per_message: int = 1999, seed: int = 3) -> list[dict[str, str]]:
    """Issue 17's shape: many messages, each full of phone-number-like values."""
    rng = random.Random(seed)
    return [
        {
            "role": "user",
            "content": " ".join(
                f"+{rng.randint(1, 99)} {rng.randint(100, 999)} {rng.randint(1000, 9999)}"
                for _ in range(per_message)
            ),
        }
        for _ in range(messages)
    ]
