"""The e-mail recognizer (gateway/redaction/emails.py) finds exactly what Presidio's
``EmailRecognizer`` finds (less a URL's ``password@host``), on the labelled corpus and on
generated addresses an attacker or an odd export would send; its per-domain memo never
holds an address."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
import regex
from presidio_analyzer.predefined_recognizers import EmailRecognizer

from gateway.redaction import emails
from gateway.redaction.emails import UrlAwareEmailRecognizer, email_valid
from gateway.redaction.normalize import View
from tests.redaction.dense import contacts_emails_csv

CORPUS = Path(__file__).resolve().parents[1] / "data" / "redaction_corpus.jsonl"
FLAGS = re.DOTALL | re.MULTILINE | re.IGNORECASE  # the registry's global flags (analyzer.py)
_USERINFO = re.compile(r"://[^\s:/@]{0,64}:$")

LOCALS = [
    "bob",
    "Bob.Smith",
    "o'neil",
    "a+tag",
    "x",
    "_",
    "a..b",
    "a/b",
    "q?x",
    "h#1",
    "a.",
    "-a-",
    '"quoted"',
    "ünïcode",
    "用户",
    "a{b}|c",
    "1234",
    "a=b",
    "~t",
    "%41",
]
DOMAINS = [
    "example.com",
    "EXAMPLE.COM",
    "corp.example.co.uk",
    "mail.co.jp",
    "acme.io",
    "xn--80ak6aa92e.com",
    "пример.рф",
    "例子.中国",
    "example.invalidtld",
    "localhost",
    "host",
    "a-b--c.org",
    "x.y.z.travel",
    "10.1.2.3",
    "example.c",
    "ex_ample.com",
    "example.com.",
    "ex.ample.zz",
    "gmail.com",
    "web.de",
    "s3.amazonaws.com",
    "github.io",
    "b.blogspot.com",
]
SEPS = [" ", ",", ";", "\n", "<", ">", "(", ")", ":", "mailto:", "://u:", '"', "'", "/", ".", "-", "@", "＠"]


def _path_tails(text: str) -> list[tuple[int, int, float]]:
    """Addresses at the end of a path Presidio drops (``kb://c/jane@example.com``: it reads
    ``c`` as the host), found by its own pattern and validation from after the last cut."""
    stock = EmailRecognizer()
    pattern = regex.compile(EmailRecognizer.PATTERNS[0].regex, FLAGS)
    out = []
    for m in pattern.finditer(text):
        local = m.group().rpartition("@")[0]
        cut = max(local.rfind("/"), local.rfind("?"), local.rfind("#"))
        if stock.validate_result(m.group()) or cut < 0:
            continue
        tail = m.start() + cut + 1
        if pattern.fullmatch(text, tail, m.end()) and stock.validate_result(text[tail : m.end()]):
            out.append((tail, m.end(), 1.0))
    return out


def _presidio(text: str) -> list[tuple[int, int, float]]:
    """Presidio's results, less a URL's ``password@host``, plus the addresses ending paths."""
    stock = EmailRecognizer()
    found = [(r.start, r.end, r.score) for r in stock.analyze(text, ["EMAIL_ADDRESS"], None, FLAGS)]
    return [
        r for r in sorted(found + _path_tails(text)) if not _USERINFO.search(text, max(0, r[0] - 96), r[0])
    ]


def _ours(text: str) -> list[tuple[int, int, float]]:
    return [
        (r.start, r.end, r.score)
        for r in UrlAwareEmailRecognizer().analyze(text, ["EMAIL_ADDRESS"], None, FLAGS)
    ]


def _generated(rng: random.Random, count: int) -> str:
    parts = []
    for _ in range(count):
        parts.append(rng.choice(SEPS))
        parts.append(f"{rng.choice(LOCALS)}{rng.choice(['@', '@', '@', '＠', ' @'])}{rng.choice(DOMAINS)}")
    return "".join(parts)


def test_same_results_as_presidio_on_the_labelled_corpus() -> None:
    texts = [json.loads(line)["text"] for line in CORPUS.read_text().splitlines() if line.strip()]
    for text in texts:
        assert _ours(text) == _presidio(text), text
    joined = "\n".join(texts)
    assert _ours(joined) == _presidio(joined)


@pytest.mark.parametrize("seed", range(6))
def test_same_results_as_presidio_on_generated_addresses(seed: int) -> None:
    text = _generated(random.Random(seed), 400)
    assert _ours(text) == _presidio(text)
    view = View(text).text  # fullwidth ＠ and the like, as the engine sees them
    assert _ours(view) == _presidio(view)


def test_each_address_validates_as_presidio_does() -> None:
    stock = EmailRecognizer()
    for local in LOCALS:
        for domain in DOMAINS:
            address = f"{local}@{domain}"
            assert email_valid(address) == stock.validate_result(address), address
            assert email_valid(address.upper()) == stock.validate_result(address.upper()), address


def test_a_contact_export_finds_every_address() -> None:
    csv, addresses = contacts_emails_csv(300)
    found = _ours(csv)
    assert [csv[a:b] for a, b, _ in found] == addresses
    assert found == _presidio(csv)


def test_the_memo_holds_domains_never_addresses() -> None:
    text = _generated(random.Random(9), 300) + " a/secret@example.com jane.doe@corp.example.co.uk"
    pattern = regex.compile(EmailRecognizer.PATTERNS[0].regex, FLAGS)
    domains = {m.group().rpartition("@")[2] for m in pattern.finditer(text)}
    seen: list[str] = []
    original = emails._host_valid

    def spy(host: str) -> bool:
        seen.append(host)
        return bool(original(host))

    emails._host_valid = spy  # type: ignore[assignment]
    try:
        _ours(text)
    finally:
        emails._host_valid = original
    assert "corp.example.co.uk" in seen
    assert set(seen) <= domains  # each key is the domain part of a match
    assert not any("secret" in h or "jane" in h for h in seen)  # a local part never reaches the memo


def test_a_url_password_is_not_an_address() -> None:
    text = "mongodb+srv://svc:Zx9y@cluster0.example.net/db and ops@example.net"
    assert [text[a:b] for a, b, _ in _ours(text)] == ["ops@example.net"]


@pytest.mark.parametrize(
    "text",
    [
        "@" * 500,
        "a@" * 300,
        "a.b" * 700 + "@example.com",
        "bob@example.com@example.com x@y.co.uk@z.org",
        "a@b.c@d.com, e@f.example.com;g@h.io:i@j.net(k@l.org)<m@n.de>[o@p.fr]\\q@r.es",
        "—bob@example.com— «ann@example.org» bob@例子.中国 x@пример.рф é@é.com",
        "bob_@example.com _bob@example.com .bob@example.com bob.@example.com -a@b-.com a@-b.com",
        "user@host user@host.invalidtld user@10.1.2.3 user@[10.1.2.3] a@b.c",
    ],
)
def test_same_results_as_presidio_on_odd_and_hostile_shapes(text: str) -> None:
    assert _ours(text) == _presidio(text)
    view = View(text).text
    assert _ours(view) == _presidio(view)


def test_the_engine_finds_every_address_of_an_export_and_the_numbers_beside_them() -> None:
    from gateway.redaction.config import RedactionSettings
    from gateway.redaction.engine import RedactionEngine

    engine = RedactionEngine(RedactionSettings())
    try:
        csv, addresses = contacts_emails_csv(400)
        text = csv + "\nsee ops@example.com, (ops@example.com) and a@b.c@d.com"
        spans = engine.detect(text)
        found = [text[s.start : s.end] for s in spans if s.entity == "EMAIL_ADDRESS"]
        assert found == [*addresses, "ops@example.com", "ops@example.com"]  # a@b.c: no such suffix
        assert [s.start for s in spans] == sorted(s.start for s in spans)
        assert sum(s.entity == "PHONE_NUMBER" for s in spans) == 400
    finally:
        engine.close()
