"""Generate ``tests/data/redaction_corpus.jsonl``: the labelled corpus of the redaction tests.

Run ``python -m tests.redaction.corpus_gen`` to regenerate (deterministic: fixed seed). Each
line is ``{"text": ..., "entities": [{"type": ..., "value": ...}], "kind": ...}``; a line with
no entities is a clean look-alike that must not be flagged. Values are made here, from the
formats' own rules (Luhn, IBAN mod-97, SSN areas, base58check, phonenumbers' validity), never
by asking the detector, so the labels are independent of what is being tested.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid
from pathlib import Path

import phonenumbers

OUT = Path(__file__).resolve().parent.parent / "data" / "redaction_corpus.jsonl"
B62 = string.ascii_letters + string.digits
URLSAFE = B62 + "-_"
B64 = B62 + "+/"

rng = random.Random(20240611)


def rand(alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def rand_token(alphabet: str, n: int) -> str:
    """A random token that, like real keys, has a digit (a key without one is a 1-in-5000 draw)."""
    while True:
        t = rand(alphabet, n)
        if any(c.isdigit() for c in t):
            return t


# -- values ---------------------------------------------------------------------------------


def luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for d in string.digits:
        if luhn_ok(body + d):
            return body + d
    raise AssertionError


def luhn_ok(number: str) -> bool:
    digits = [int(c) for c in number][::-1]
    total = sum(digits[0::2]) + sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
    return total % 10 == 0


def card(valid: bool = True) -> str:
    prefix, length = rng.choice(
        [("4", 16), ("51", 16), ("55", 16), ("6011", 16), ("4", 13), ("37", 15), ("34", 15)]
    )
    n = luhn_complete(prefix, length)
    if not valid:
        last = int(n[-1])
        n = n[:-1] + str((last + rng.randint(1, 9)) % 10)
    style = rng.choice(["plain", "space", "dash"])
    if length == 16 and style != "plain":
        sep = " " if style == "space" else "-"
        return sep.join(n[i : i + 4] for i in range(0, 16, 4))
    if length == 15 and style != "plain":
        sep = " " if style == "space" else "-"
        return f"{n[:4]}{sep}{n[4:10]}{sep}{n[10:]}" if rng.random() < 0.5 else n
    return n


IBAN_FORMATS = {  # country: BBAN layout (n = digits, a = upper letters, c = alphanumerics)
    "DE": "n18",
    "GB": "a4n14",
    "FR": "n10c11n2",
    "ES": "n20",
    "NL": "a4n10",
    "IT": "a1n10c12",
    "BE": "n12",
    "CH": "n5c12",
    "AT": "n16",
    "PL": "n24",
    "SE": "n20",
    "IE": "a4n14",
}


def iban(valid: bool = True) -> str:
    country = rng.choice(list(IBAN_FORMATS))
    layout = IBAN_FORMATS[country]
    bban = ""
    i = 0
    while i < len(layout):
        kind = layout[i]
        j = i + 1
        while j < len(layout) and layout[j].isdigit():
            j += 1
        n = int(layout[i + 1 : j])
        alphabet = {
            "n": string.digits,
            "a": string.ascii_uppercase,
            "c": string.ascii_uppercase + string.digits,
        }[kind]
        bban += rand(alphabet, n)
        i = j
    rearranged = bban + country + "00"
    num = int("".join(str(int(c, 36)) for c in rearranged))
    check = 98 - num % 97
    if not valid:
        check = (check + rng.randint(1, 90)) % 97 or 1
    code = f"{country}{check:02d}{bban}"
    if rng.random() < 0.5:
        code = " ".join(code[k : k + 4] for k in range(0, len(code), 4))
    return code


def ssn() -> str:
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            break
    group, serial = rng.randint(1, 99), rng.randint(1, 9999)
    sep = rng.choice(["-", "-", " ", "."])
    return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"


def ssn_bare() -> str:
    while True:
        area = rng.randint(1, 899)
        if area != 666:
            break
    return f"{area:03d}{rng.randint(1, 99):02d}{rng.randint(1, 9999):04d}"


PHONES = [
    # (number as written, region it is valid for); checked with phonenumbers below.
    "(415) 555-2671",
    "415-555-2671",
    "415.555.2671",
    "+1 415 555 2671",
    "1-415-555-2671",
    "+1 (212) 736-5000",
    "(646) 555-0134",
    "212 736 5000",
    "+1-202-456-1111",
    "(503) 823-4000",
    "617-253-1000",
    "+1 312 744 5000",
    "020 7946 0958",
    "+44 20 7946 0958",
    "+44 (0)20 7946 0958",
    "0161 496 0000",
    "+44 161 496 0000",
    "07911 123456",
    "+44 7400 123456",
    "0131 496 0123",
    "+44 117 496 0789",
    "029 2018 0123",
    "+49 30 901820",
    "+33 1 42 68 53 00",
    "+81 3-1234-5678",
    "+61 2 9374 4000",
    "+91 22 2288 1234",
    "+34 912 34 56 78",
    "+39 06 6982",
    "+31 20 624 1111",
    "+46 8 405 10 00",
    "+353 1 679 4000",
    "+1 416 555 0199",
    "+65 6123 4567",
    "+27 21 403 2911",
    "+55 11 3048 5000",
    "+52 55 5249 1000",
    "4155552671",
    "+14155552671",
    "1 (415) 555-2671",
    "415 5552671",
    "020 79460958",
    "+442079460958",
    "(020) 7946 0958",
    "+1.415.555.2671",
    "0207 946 0958",
    "+1 415-555-2671 ext. 123",
    "(415)555-2671",
    "+44-20-7946-0958",
    "+33 142685300",
]


def phone_ok(text: str) -> bool:
    for region in ("US", "GB"):
        try:
            if phonenumbers.is_valid_number(phonenumbers.parse(text, region)):
                return True
        except phonenumbers.NumberParseException:
            continue
    return False


def email() -> str:
    first = rng.choice(
        [
            "alice",
            "bob",
            "carol",
            "dave",
            "erin",
            "frank",
            "grace",
            "heidi",
            "ivan",
            "judy",
            "mallory",
            "niaj",
            "olivia",
            "peggy",
            "rupert",
            "sybil",
            "trent",
            "victor",
            "walter",
            "zoe",
        ]
    )
    last = rng.choice(
        ["smith", "jones", "nguyen", "garcia", "müller", "okafor", "kowalski", "tanaka", "silva", "oconnor"]
    )
    local = rng.choice(
        [
            f"{first}",
            f"{first}.{last}",
            f"{first}_{last}",
            f"{first}+{rand(string.ascii_lowercase, 4)}",
            f"{first[0]}{last}{rng.randint(1, 99)}",
            f"{first}-{last}",
            f"{first.upper()}",
        ]
    )
    domain = rng.choice(
        [
            "example.com",
            "acme-corp.io",
            "mail.example.org",
            "corp.example.co.uk",
            "students.uni.edu",
            "exämple.de",
            "sub.domain.example.net",
            "gmail.com",
            "proton.me",
            "company.travel",
        ]
    )
    return f"{local}@{domain}".replace("ü", "u") if rng.random() < 0.7 else f"{local}@{domain}"


def ipv4() -> str:
    return rng.choice(
        [
            f"10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            f"192.168.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            f"{rng.randint(11, 223)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
            f"172.{rng.randint(16, 31)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
        ]
    )


def ipv6() -> str:
    groups = [f"{rng.randint(0, 0xFFFF):x}" for _ in range(8)]
    return rng.choice(
        [
            ":".join(groups),
            f"2001:db8::{groups[0]}:{groups[1]}",
            f"fe80::{groups[2]}:{groups[3]}",
            f"2a00:1450:4001:{groups[4]}::200e",
        ]
    )


BTC = [
    "1BoatSLRHtKNngkdXEeobR76b53LETtpyT",
    "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
    "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
    "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
    "3Ai1JZ8pdJb2ksieUV8FsxSNVJCpoPi8W6",
    "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
]

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def btc_address() -> str:
    payload = bytes([0]) + rng.randbytes(20)
    check = hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    n = int.from_bytes(payload + check, "big")
    out = ""
    while n:
        n, r = divmod(n, 58)
        out = B58[r] + out
    return "1" + out


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt() -> str:
    header = b64url(json.dumps({"alg": rng.choice(["HS256", "RS256", "ES256"]), "typ": "JWT"}).encode())
    payload = b64url(
        json.dumps(
            {"sub": str(rng.randint(1000, 99999)), "name": "svc", "iat": rng.randint(1.6e9, 1.8e9)}
        ).encode()
    )
    return f"{header}.{payload}.{b64url(rng.randbytes(32))}"


def pem(kind: str) -> str:
    body = base64.b64encode(rng.randbytes(rng.choice([120, 400, 900]))).decode()
    lines = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return f"-----BEGIN {kind}-----\n{lines}\n-----END {kind}-----"


SECRETS = {
    "OPENAI_API_KEY": lambda: rng.choice(
        [
            "sk-" + rand_token(B62, 48),
            "sk-proj-" + rand_token(URLSAFE, 156),
            "sk-svcacct-" + rand_token(URLSAFE, 120),
            "sk-" + rand_token(B62, 20) + "T3BlbkFJ" + rand_token(B62, 20),
        ]
    ),
    "ANTHROPIC_API_KEY": lambda: (
        "sk-ant-" + rng.choice(["api03-", "admin01-"]) + rand_token(URLSAFE, 93) + "AA"
    ),
    "AWS_ACCESS_KEY_ID": lambda: rng.choice(["AKIA", "ASIA"]) + rand(string.ascii_uppercase + "234567", 16),
    "GITHUB_TOKEN": lambda: rng.choice(
        [
            rng.choice(["ghp_", "gho_", "ghu_", "ghs_", "ghr_"]) + rand_token(B62, 36),
            "github_pat_" + rand_token(B62, 22) + "_" + rand_token(B62, 59),
        ]
    ),
    "SLACK_TOKEN": lambda: rng.choice(
        [
            f"xoxb-{rng.randint(10**10, 10**12)}-{rng.randint(10**11, 10**13)}-{rand(B62, 24)}",
            f"xoxp-{rng.randint(10**10, 10**12)}-{rng.randint(10**10, 10**12)}-{rng.randint(10**11, 10**13)}-{rand(B62, 32)}",
            f"https://hooks.slack.com/services/T{rand(string.ascii_uppercase + string.digits, 8)}/"
            f"B{rand(string.ascii_uppercase + string.digits, 10)}/{rand(B62, 24)}",
        ]
    ),
    "JWT": jwt,
    "WARDGATE_KEY": lambda: "wg-" + rand_token(URLSAFE, 43),
}

SECRET_TEMPLATES = [
    "export {key_name}={v}",
    "{key_name}={v}",
    'client = OpenAI(api_key="{v}")',
    "here is my key: {v} please debug",
    '{{"token": "{v}", "scope": "read"}}',
    "token {v} expired yesterday",
    "  - name: CI_TOKEN\n    value: {v}",
    "curl -H 'X-Api-Key: {v}' https://api.example.com/v1/items",
    "The leaked credential was {v}.",
    "debug: using credential '{v}' for the request",
    "```\n{v}\n```",
    "set the secret to {v} and restart",
]

AWS_SECRET_TEMPLATES = [
    "aws_secret_access_key = {v}",
    "AWS_SECRET_ACCESS_KEY={v}",
    'export AWS_SECRET_ACCESS_KEY="{v}"',
    '"SecretAccessKey": "{v}",',
    "aws_secret_key: {v}",
    "secret_access_key={v}",
    "my aws secret is {v}",
    "[default]\naws_access_key_id = AKIA" + "Q" * 16 + "\naws_secret_access_key = {v}",
]

PII_TEMPLATES = {
    "EMAIL_ADDRESS": [
        "Please email {v} about the invoice.",
        "Contact: {v}",
        "cc <{v}> on the thread",
        'user = {{"email": "{v}", "active": true}}',
        "mailto:{v}",
        "From: Jane <{v}>",
        "send the report to {v}, thanks!",
        "reply-to={v}",
        "{v}",
    ],
    "PHONE_NUMBER": [
        "Call me at {v} tomorrow.",
        "phone: {v}",
        "Tel {v} (office)",
        "my number is {v}",
        "emergency contact {v}, ask for Sam",
        '{{"phone": "{v}"}}',
        "fax: {v}",
    ],
    "CREDIT_CARD": [
        "card number {v} exp 09/27",
        "Pay with {v} please",
        "cc: {v}",
        "charged {v} for $42.10",
        '{{"pan": "{v}"}}',
        "my visa is {v}",
    ],
    "IBAN_CODE": [
        "Wire it to IBAN {v} by Friday.",
        "IBAN: {v}",
        "beneficiary account {v} (EUR)",
        "bank details {v}",
        '{{"iban": "{v}"}}',
    ],
    "US_SSN": [
        "SSN {v} on file",
        "social security number: {v}",
        "my ssn is {v}",
        "taxpayer id {v} (SSN)",
        '{{"ssn": "{v}"}}',
    ],
    "IP_ADDRESS": [
        "ssh admin@{v} -p 22",
        "the server at {v} is down",
        "allow from {v}",
        "client_ip={v}",
        "ping {v} returns timeout",
        "Connecting to [{v}]:443",
    ],
    "CRYPTO": ["send 0.1 BTC to {v}", "wallet: {v}", "donations: {v}"],
}

CLEAN = [
    # order numbers, ids, versions, names that look like entities but are not
    "Order #{n6} shipped on 2024-03-15 via UPS.",
    "Your order ORD-2024-{n6} is confirmed.",
    "Invoice INV-{n8} is due in 30 days.",
    "Tracking number 1Z999AA1{n8}4 is in transit.",
    "request id {uuid}",
    "trace_id={hex32} span_id={hex16}",
    "commit {hex40} fixed the race",
    "Upgrade to version {ver} before Friday.",
    "pip install requests=={ver}",
    "docker pull nginx:{ver}-alpine",
    "node v{ver} and npm {ver}",
    "Released {ver}-rc.{d1} with 12 fixes.",
    "python 3.11.{d1} on linux",
    "s3://acme-prod-logs-us-east-1/2024/03/15/app.log.gz",
    "bucket acme-data-lake-eu-west-2 has 1,204,331 objects",
    "arn:aws:s3:::acme-terraform-state-prod",
    "eks cluster prod-eks-{d2} in us-west-2 has 14 nodes",
    "kubectl -n payments get pod api-7d9f8b6c5-x2k4q",
    "image: registry.example.com/team/api:{hex7}",
    "sha256:{hex64}",
    "the file is {n4} bytes long",
    "Temperature was 21.{d1}C at 14:32:07",
    "timestamp 2024-03-15T14:32:07.123Z level=info",
    "Meeting on 2024/05/06 at 10:30, room 4B.",
    "Build #{n4} took 3m {d2}s on runner-{d2}",
    "listening on localhost:{n4}",
    "port 8080 and 8443 are open",
    "price: $1,234.56 (incl. VAT)",
    "We processed 1,234,567 rows in 12.5 s.",
    "pi is 3.14159265358979",
    "color #{hex6} on hover",
    "zip code 94103-{n4}",
    "ISBN 978-3-16-148410-0",
    "ISBN-13: 978-0-{n3}-{n5}-{d1}",
    "Use sklearn or the sk-learn compatible wrapper.",
    "The AKIA prefix marks long-term AWS keys.",
    "Bearer tokens go in the Authorization header.",
    "run wg-quick up wg0 to start the tunnel",
    "xoxo, see you soon",
    "a JWT starts with eyJ because of the base64 of '{{'.",
    "ask @alice in #payments",
    "decorate with @pytest.fixture(scope='session')",
    "npm i @types/node@20",
    "user@localhost can log in",
    "root@web-01:~# uptime",
    "Email validation regex: ^[^@]+@[^@]+$",
    "-----BEGIN CERTIFICATE-----\nMIIB{b64}\n-----END CERTIFICATE-----",
    "-----BEGIN PUBLIC KEY-----\nMFkw{b64}\n-----END PUBLIC KEY-----",
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{b64} deploy@ci",
    "the password must have 12 characters",
    "set secret_name to prod-db-credentials",
    "secret access key rotation is every 90 days",
    "The SSN field must have 9 digits.",
    "Social security numbers are never logged.",
    "call the function f(1, 2, 3) with retries=5",
    "matrix [[1, 2], [3, 4]] has det -2",
    "range(0, 100000) took 4 ms",
    "the year 1999 and the year 2024",
    "step 1 of 12: install",
    "Chapter 12, pages 211-227 (2003)",
    "coordinates 37.7749, -122.4194",
    "lat/long 51.5074 N, 0.1278 W",
    "GPU 0: 24576 MiB total, 1024 MiB used",
    "epoch {d2}/100 loss=0.{n4} acc=0.9{n3}",
    "mem 16384 MB, swap 0",
    "duration P3Y6M4DT12H30M5S",
    "cron 0 */6 * * *",
    "UUID v4: {uuid}",
    "ULID 01ARZ3NDEKTSV4RRFFQ69G5FAV",
    "account id 1234-5678 (internal)",
    "employee number E-{n6}",
    "ticket JIRA-{n4} and PROJ-{n5}",
    "IBAN GB00 WEST 1234 5698 7654 32 is a test value with a bad checksum",
    "the hash is {hex40}",
    "base64: {b64}",
    "session cookie sid={hex32}",
    'etag W/"{hex16}"',
    "mac address 00:1A:2B:3C:4D:5E on eth0",
    "see RFC 7519 section 4.1",
    "HTTP/1.1 200 OK",
    "Content-Length: {n5}",
    "user-agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/{ver}",
    "We met at 10:30:45 and left at 11:15:00.",
    "scores: 98, 87, 76, 65, 54",
    "phone extension 4421",
    "room 1203, building 7, floor 12",
    "lot number LOT-2024-03-{n4}",
    "serial SN{n8}",
    "model gpt-4o-2024-08-06",
    "claude-3-5-sonnet-20241022 is the model",
    "sk is the language code for Slovak.",
    "The route /v1/chat/completions returns 200.",
    "regex \\d{{3}}-\\d{{2}}-\\d{{4}} matches SSN-like strings",
    "format (xxx) xxx-xxxx for US numbers",
    "+1 is the country code of the US",
    "dial 911 in an emergency",
    "in 2023 we had 48,213 customers and 1,204 employees",
    "batch of 4111 items",
    "the number 5555 appears twice",
]


def fill(template: str) -> str:
    return template.format(
        n3=rng.randint(100, 999),
        n4=rng.randint(1000, 9999),
        n5=rng.randint(10000, 99999),
        n6=rng.randint(100000, 999999),
        n8=rng.randint(10**7, 10**8 - 1),
        d1=rng.randint(0, 9),
        d2=rng.randint(10, 99),
        uuid=uuid.UUID(int=rng.getrandbits(128), version=4),
        hex6=rand("0123456789abcdef", 6),
        hex7=rand("0123456789abcdef", 7),
        hex16=rand("0123456789abcdef", 16),
        hex32=rand("0123456789abcdef", 32),
        hex40=rand("0123456789abcdef", 40),
        hex64=rand("0123456789abcdef", 64),
        ver=f"{rng.randint(0, 20)}.{rng.randint(0, 40)}.{rng.randint(0, 30)}",
        b64=rand(B64, 48),
    )


def main() -> None:
    lines: list[dict[str, object]] = []

    def add(text: str, entities: list[tuple[str, str]], kind: str) -> None:
        lines.append({"text": text, "entities": [{"type": t, "value": v} for t, v in entities], "kind": kind})

    makers = {
        "EMAIL_ADDRESS": email,
        "CREDIT_CARD": card,
        "IBAN_CODE": iban,
        "US_SSN": ssn,
        "IP_ADDRESS": lambda: ipv4() if rng.random() < 0.6 else ipv6(),
        "CRYPTO": lambda: rng.choice([*BTC, btc_address()]),
    }
    for entity, maker in makers.items():
        for _ in range(30):
            add(rng.choice(PII_TEMPLATES[entity]).format(v=(v := maker())), [(entity, v)], "pii")
    for _ in range(12):
        v = ssn_bare()
        add(
            rng.choice(
                ["SSN: {v}", "ssn#{v}", "Social Security Number {v}", "social security no. {v}"]
            ).format(v=v),
            [("US_SSN", v)],
            "pii",
        )
    phones = [p for p in PHONES if phone_ok(p)]
    missing = sorted(set(PHONES) - set(phones))
    if missing:
        raise SystemExit(f"not valid phone numbers: {missing}")
    for p in phones:
        add(rng.choice(PII_TEMPLATES["PHONE_NUMBER"]).format(v=p), [("PHONE_NUMBER", p)], "pii")
    for entity, maker in SECRETS.items():
        for _ in range(14):
            v = maker()
            key_name = {
                "OPENAI_API_KEY": "OPENAI_API_KEY",
                "ANTHROPIC_API_KEY": "ANTHROPIC_API_KEY",
                "AWS_ACCESS_KEY_ID": "AWS_ACCESS_KEY_ID",
                "GITHUB_TOKEN": "GH_TOKEN",
            }.get(entity, "TOKEN")
            add(rng.choice(SECRET_TEMPLATES).format(v=v, key_name=key_name), [(entity, v)], "secret")
    for t in AWS_SECRET_TEMPLATES * 2:
        v = rand(B64, 40)
        text = t.format(v=v)
        ents = [("AWS_SECRET_ACCESS_KEY", v)]
        if "AKIA" in text:
            ents.append(("AWS_ACCESS_KEY_ID", "AKIA" + "Q" * 16))
        add(text, ents, "secret")
    for kind in [
        "RSA PRIVATE KEY",
        "PRIVATE KEY",
        "EC PRIVATE KEY",
        "OPENSSH PRIVATE KEY",
        "ENCRYPTED PRIVATE KEY",
        "DSA PRIVATE KEY",
        "PGP PRIVATE KEY BLOCK",
    ] * 2:
        v = pem(kind)
        add(
            rng.choice(["here is the key:\n{v}\nthanks", "{v}", "key.pem contains\n{v}"]).format(v=v),
            [("PRIVATE_KEY", v)],
            "secret",
        )
    for _ in range(14):
        v = rand_token(URLSAFE + ".~+/", rng.randint(24, 64))
        add(
            rng.choice(
                [
                    "Authorization: Bearer {v}",
                    "curl -H 'Authorization: bearer {v}' https://x.example/api",
                    "use header `Bearer {v}` for auth",
                    'headers={{"Authorization": "Bearer {v}"}}',
                ]
            ).format(v=v),
            [("BEARER_TOKEN", v)],
            "secret",
        )
    # several entities on one line
    for _ in range(25):
        e, c, p = email(), card(), rng.choice(phones)
        add(
            f"Customer {e} paid with {c}; call back on {p}.",
            [("EMAIL_ADDRESS", e), ("CREDIT_CARD", c), ("PHONE_NUMBER", p)],
            "mixed",
        )
    for _ in range(15):
        k, i = SECRETS["OPENAI_API_KEY"](), iban()
        add(f"debug dump: key={k} iban={i} host={ipv4()}", [("OPENAI_API_KEY", k), ("IBAN_CODE", i)], "mixed")
    # clean look-alikes
    for template in CLEAN:
        for _ in range(3):
            add(fill(template), [], "clean")
    for _ in range(25):
        add(f"card {card(valid=False)} was declined (invalid number)", [], "clean")
        add(f"IBAN {iban(valid=False)} failed validation", [], "clean")
    # host= values above are IP addresses too: label them
    for line in lines:
        if line["kind"] == "mixed" and "host=" in line["text"]:
            line["entities"].append({"type": "IP_ADDRESS", "value": line["text"].rsplit("host=", 1)[1]})
    OUT.write_text("".join(json.dumps(x, ensure_ascii=False) + "\n" for x in lines), encoding="utf-8")
    print(f"{len(lines)} lines -> {OUT}")


if __name__ == "__main__":
    main()
