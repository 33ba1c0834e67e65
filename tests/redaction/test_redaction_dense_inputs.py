"""Dense inputs are redacted, not refused: a 2,500-row contact list reaches the upstream with
every phone number replaced; a JSON of 2,500 ten-digit ids reaches it unchanged (ids are not
phone numbers without a label) without python-phonenumbers' matcher ever running on them;
the fast path for standard North American shapes finds exactly what the matcher finds."""

from __future__ import annotations

from collections.abc import Iterator

import openai
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.redaction.component import Redaction
from gateway.redaction.redactor import Redactor
from tests.harness import PASS_THROUGH, TEST_KEY, RunningGateway, gateway_settings, running_gateway
from tests.redaction.dense import contacts_csv, ids_json


@pytest.fixture(scope="module")
def gw(fake_upstream, tmp_path_factory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("redaction-dense")
    overrides = {**PASS_THROUGH, "redaction": {"enabled": True}}
    with running_gateway(gateway_settings(root, fake_upstream.base_url, **overrides)) as running:
        yield running


@pytest.fixture
def client(gw) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)


def test_a_contact_list_of_2500_rows_is_redacted_not_refused(client, upstream) -> None:
    csv, phones = contacts_csv()
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": csv}])
    sent = orjson.loads(upstream.requests[-1].body)["messages"][0]["content"]
    assert not [p for p in phones if p in sent]
    assert sent.count("<PHONE_NUMBER_") == len(phones)
    assert sent.splitlines()[0] == "name,phone" and sent.splitlines()[1].split(",")[0].strip()


def test_a_json_of_2500_ids_passes_unchanged_and_skips_the_phone_matcher(gw, client, upstream) -> None:
    doc, _ids = ids_json()
    engine = gw.component(Redaction).redactor.engine
    before = engine.presidio_calls
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": doc}])
    sent = orjson.loads(upstream.requests[-1].body)["messages"][0]["content"]
    assert sent == doc
    assert engine.presidio_calls == before, "no recognizer ran on the ids"


def test_a_labelled_phone_among_ids_is_still_found(redactor: Redactor) -> None:
    doc, _ = ids_json(200)
    doc = doc[:-2] + ',{"phone":4155552671}]}'
    spans = redactor.engine.detect(doc)
    assert [(s.entity, doc[s.start : s.end]) for s in spans] == [("PHONE_NUMBER", "4155552671")]


_AREA = st.sampled_from(["212", "415", "355", "555", "800", "911", "201", "989", "646", "123"])
_SHAPE = st.sampled_from(
    [
        "({a}) {e}-{n}",
        "{a}-{e}-{n}",
        "{a}.{e}.{n}",
        "{a} {e} {n}",
        "+1 {a} {e} {n}",
        "1-{a}-{e}-{n}",
        "+1 ({a}) {e}-{n}",
    ]
)
_AROUND = st.sampled_from(
    [
        "",
        " ",
        "x",
        "(",
        ")",
        ",",
        ";",
        ".",
        ":",
        "#",
        "+",
        "-",
        "/",
        "a.",
        " ext. 12",
        " x3",
        "\n",
        "'",
        "1",
        "=",
        "$",
        "[",
        "]",
        "{",
    ]
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    area=_AREA,
    exchange=st.integers(min_value=100, max_value=999),
    line=st.integers(min_value=0, max_value=9999),
    shape=_SHAPE,
    before=_AROUND,
    after=_AROUND,
    label=st.sampled_from(["row 7", "call me at", "phone:", "Tel.", "my number is", "fax"]),
)
def test_the_fast_phone_path_finds_what_phonenumbers_finds(
    redactor: Redactor, area: str, exchange: int, line: int, shape: str, before: str, after: str, label: str
) -> None:
    number = shape.format(a=area, e=exchange, n=f"{line:04d}")
    text = f"{label}{before}{number}{after} end"
    assert redactor.engine.detect(text) == redactor.engine.detect(text, prefilter=False), text
