"""Recognizers added for agent traffic: phone numbers after a label (possible, not only
valid), no phone in a bare id, no IP address in ``0.0.0.0`` or a section number, and the
secret formats agents paste (database URLs, password assignments, Google and Stripe keys,
HTTP Basic credentials). True positives are found exactly; clean look-alikes are untouched."""

from __future__ import annotations

import pytest

from gateway.redaction.redactor import Redactor

FOUND = [
    ("Call me at (355) 852-9749 tomorrow", "(355) 852-9749", "PHONE_NUMBER"),
    ("phone: 4155552671", "4155552671", "PHONE_NUMBER"),
    ('{"phone":4155552671,"name":"x"}', "4155552671", "PHONE_NUMBER"),
    ("Tel. 555-867-5309 (office)", "555-867-5309", "PHONE_NUMBER"),
    ("mobile +33 6 12 34 56 78", "+33 6 12 34 56 78", "PHONE_NUMBER"),
    ("my number is 212 736 5000", "212 736 5000", "PHONE_NUMBER"),
    ("reach me at (212) 736-5000", "(212) 736-5000", "PHONE_NUMBER"),
    ("the office is (212) 736-5000", "(212) 736-5000", "PHONE_NUMBER"),  # valid: no label needed
    ("host 10.20.30.40 is down", "10.20.30.40", "IP_ADDRESS"),
    ("DATABASE_URL=postgres://admin:S3cr3t@db.internal:5432/app", "S3cr3t", "PASSWORD"),
    ("postgresql://app_user:pa55-w0rd!@db-1.internal/db", "pa55-w0rd!", "PASSWORD"),
    ("mysql://root:hunter22@localhost:3306/shop", "hunter22", "PASSWORD"),
    ("mongodb+srv://svc:Zx9yQ8wV@cluster0.abcde.mongodb.net/prod", "Zx9yQ8wV", "PASSWORD"),
    ("redis://:R3disPass@cache:6379/0", "R3disPass", "PASSWORD"),
    ("password: hunter2", "hunter2", "PASSWORD"),
    ("passwd=Tr0ub4dor&3", "Tr0ub4dor&3", "PASSWORD"),
    ("pwd=abc123xyz", "abc123xyz", "PASSWORD"),
    ('{"password": "correct horse battery"}', "correct horse battery", "PASSWORD"),
    ("DB_PASSWORD='s3cr3t!'", "s3cr3t!", "PASSWORD"),
    ("Password := Winter2024!", "Winter2024!", "PASSWORD"),
    (
        "key=AIzaSyD3m0K3y-abcdefghijklmnopqrstuvwxy",
        "AIzaSyD3m0K3y-abcdefghijklmnopqrstuvwxy",
        "GOOGLE_API_KEY",
    ),
    ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "STRIPE_API_KEY"),
    ("restricted rk_live_51H8xYzAbCdEfGhIjKlMn", "rk_live_51H8xYzAbCdEfGhIjKlMn", "STRIPE_API_KEY"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==", "BASIC_AUTH"),
    ('curl -H "authorization: basic YWRtaW46czNjcjN0"', "YWRtaW46czNjcjN0", "BASIC_AUTH"),
]

CLEAN = [
    '{"id": 4155552671, "parent": 2125551234}',  # ids are not phone numbers without a label
    "order 4155552671 shipped",
    "api call took 1234567 us? no: call stack depth 12",
    "call it on 2024-05-06 at 10:30",
    "listen on 0.0.0.0:8080",
    "see section 4.2.1.3 and version 1.2.0.7, clause 3.1.4.1",
    "the password is required",
    "password: str",
    "password = os.environ['DB_PASSWORD']",
    "password=getpass()",
    "password: ${DB_PASSWORD}",
    "password: <your password>",
    'password: "********"',
    "password=self.password",
    "postgres://user:${PGPASSWORD}@db/app",
    "https://example.com/docs",
    "basic information about Basic auth",
    "Basic setup: step one",
    "sk_live_short",
    "AIza is a prefix",
    "You pass: go ahead",
]


@pytest.mark.parametrize(("text", "value", "entity"), FOUND)
def test_a_value_is_found_exactly(redactor: Redactor, text: str, value: str, entity: str) -> None:
    spans = redactor.engine.detect(text)
    assert [(s.entity, text[s.start : s.end]) for s in spans] == [(entity, value)]
    assert spans == redactor.engine.detect(text, prefilter=False)


@pytest.mark.parametrize("text", CLEAN)
def test_a_look_alike_is_left_alone(redactor: Redactor, text: str) -> None:
    spans = redactor.engine.detect(text)
    assert [(s.entity, text[s.start : s.end]) for s in spans] == []
    assert redactor.engine.detect(text, prefilter=False) == ()
