"""An export taken during live traffic, streams in flight, verifies on its own.

Through the real gateway over HTTP with the openai SDK. A stream's event is dated by the
call's start but committed at its end, after events of later calls: an export paged by time
skipped it and reported a false deletion. Exports now read one snapshot in commit order.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest
from audit_helpers import PG_DSN, pg_execute

from gateway.audit.jsonl_source import JsonlSource
from gateway.audit.verify import verify
from tests.harness import (
    AUDITOR_KEY,
    PASS_THROUGH,
    TEST_KEY,
    RunningGateway,
    gateway_settings,
    running_gateway,
)

STREAMS = 4


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def gw(request: pytest.FixtureRequest, fake_upstream, tmp_path_factory) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("audit-export-live")
    audit = {"enabled": True, "backend": request.param}
    if request.param == "postgres":
        schema = f"wgtest_audit_exl_{uuid.uuid4().hex[:10]}"
        audit.update(postgres_dsn=PG_DSN, postgres_schema=schema)
    settings = gateway_settings(root, fake_upstream.base_url, **{**PASS_THROUGH, "audit": audit})
    with running_gateway(settings) as running:
        yield running
    if request.param == "postgres":
        pg_execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _export(gw: RunningGateway) -> bytes:
    r = httpx.get(
        f"{gw.url}/admin/audit/export",
        params={"format": "jsonl"},
        headers={"authorization": f"Bearer {AUDITOR_KEY}"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    return r.content


def _verified(body: bytes) -> JsonlSource:
    source = JsonlSource(body.splitlines())
    report = asyncio.run(verify(source))
    assert report.ok, report.all_breaks()
    return source


def test_an_export_during_streams_in_flight_verifies_on_its_own(gw, upstream):
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    upstream.fault("slow", times=STREAMS, chunk_delay_s=0.15)
    stream_ids: list[str] = []
    done = threading.Event()

    def stream_call() -> None:
        rid = f"req_{uuid.uuid4().hex}"
        stream_ids.append(rid)
        stream = client.with_options(default_headers={"x-request-id": rid}).chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "tell me a long story"}], stream=True
        )
        for _ in stream:
            pass

    def traffic() -> None:
        while not done.is_set():
            client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "hi"}])

    streams = [threading.Thread(target=stream_call) for _ in range(STREAMS)]
    for t in streams:
        t.start()
    upstream.wait_for_requests(STREAMS)  # every stream is upstream (and slow) before traffic starts
    background = threading.Thread(target=traffic)
    background.start()
    try:
        exports = []
        while any(t.is_alive() for t in streams):  # exports while streams are in flight
            exports.append(_export(gw))
        for t in streams:
            t.join()
        assert exports, "the streams ended before any export"
        during = [_verified(body) for body in exports]
    finally:
        done.set()
        background.join()
    assert any(len(s.segments) >= 1 for s in during)
    after = _verified(_export(gw))
    rows = [r for rows in after._chains.values() for r in rows]
    bodies = "".join(r.body for r in rows)
    assert all(rid in bodies for rid in stream_ids)  # every stream's event is in a later export
