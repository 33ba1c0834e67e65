"""Reads of audit data are audit events: who read, which endpoint and filter, how many rows.

Through the real gateway over HTTP with the openai SDK: every auditor/admin read of the log
(search, one event, export, run timeline, spend report) leaves an ``audit_read`` event that
names the reader and the filter and counts the rows, and never holds the data it answered.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.harness import (
    AUDITOR_KEY,
    PASS_THROUGH,
    TEST_KEY,
    RunningGateway,
    gateway_settings,
    running_gateway,
)

PROMPT = "My email is jane.reads@example.org, please summarise order 4242"
AUTH = {"authorization": f"Bearer {AUDITOR_KEY}"}


@pytest.fixture(scope="module")
def gw(fake_upstream, tmp_path_factory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("audit-reads")
    settings = gateway_settings(
        root, fake_upstream.base_url, **{**PASS_THROUGH, "audit": {"enabled": True, "backend": "sqlite"}}
    )
    with running_gateway(settings) as running:
        client = openai.OpenAI(base_url=running.base_url, api_key=TEST_KEY, max_retries=0)
        for _ in range(3):
            client.with_options(default_headers={"x-run-id": "run-reads"}).chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": PROMPT}]
            )
        yield running


def _reads(gw: RunningGateway, path: str) -> list[dict]:
    """The ``audit_read`` events of ``path`` (this listing is a read too, of another path)."""
    r = httpx.get(f"{gw.url}/admin/audit", params={"kind": "audit_read", "limit": 1000}, headers=AUTH)
    assert r.status_code == 200, r.text
    return [ev for ev in r.json()["data"] if ev["data"]["path"] == path]


def _no_data(event: dict) -> None:
    text = str(event)
    assert "jane.reads" not in text and "order 4242" not in text and "gpt-test" not in text


def test_a_search_is_recorded_with_reader_filter_and_row_count_but_no_rows(gw):
    marker = f"team-{uuid.uuid4().hex[:8]}"
    r = httpx.get(f"{gw.url}/admin/audit", params={"kind": "call", "limit": 2}, headers=AUTH)
    assert r.status_code == 200 and len(r.json()["data"]) == 2
    assert httpx.get(f"{gw.url}/admin/audit", params={"team": marker}, headers=AUTH).json()["data"] == []
    reads = _reads(gw, "/admin/audit")
    search = next(ev for ev in reads if ev["data"]["filter"] == {"kind": "call", "limit": "2"})
    assert search["data"]["rows"] == 2 and search["data"]["method"] == "GET"
    assert search["data"]["reader"] == {
        "admin_key_id": "auditor",
        "admin_user": "auditor",
        "roles": ["auditor"],
    }
    _no_data(search)
    empty = next(ev for ev in reads if ev["data"]["filter"] == {"team": marker})
    assert empty["data"]["rows"] == 0
    assert "principal" not in empty  # filed under no team: a read of team x is not team x's event


def test_reading_one_event_an_export_a_run_and_a_spend_report_are_recorded(gw):
    calls = httpx.get(f"{gw.url}/admin/audit", params={"kind": "call"}, headers=AUTH).json()["data"]
    one = httpx.get(f"{gw.url}/admin/audit/{calls[0]['id']}", headers=AUTH)
    assert one.status_code == 200
    [got] = _reads(gw, f"/admin/audit/{calls[0]['id']}")
    assert got["data"]["rows"] == 1
    _no_data(got)

    exported = httpx.get(
        f"{gw.url}/admin/audit/export", params={"format": "csv", "kind": "call"}, headers=AUTH
    )
    assert exported.status_code == 200 and "jane" not in exported.text  # (redaction off: no prompt stored)
    phases = {ev["data"]["phase"]: ev for ev in _reads(gw, "/admin/audit/export")}
    assert phases["start"]["data"]["rows"] is None
    assert phases["end"]["data"]["rows"] == 3 and phases["end"]["data"]["filter"] == {
        "format": "csv",
        "kind": "call",
    }
    _no_data(phases["end"])

    assert httpx.get(f"{gw.url}/admin/runs/run-reads", headers=AUTH).status_code == 200
    [run] = _reads(gw, "/admin/runs/run-reads")
    assert run["data"]["rows"] == 3
    _no_data(run)

    report = httpx.get(f"{gw.url}/admin/spend/report", params={"group_by": "team"}, headers=AUTH)
    assert report.status_code == 200, report.text
    [spend] = _reads(gw, "/admin/spend/report")
    assert spend["data"]["rows"] == len(report.json()["data"]) == 1
    assert spend["data"]["filter"] == {"group_by": "team"}
    _no_data(spend)
