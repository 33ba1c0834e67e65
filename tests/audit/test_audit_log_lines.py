"""Every backend writes: the ``log`` backend and ``audit.log_events`` lines, whatever the log level.

The lines bypass ``logging`` (a log level or a dictConfig must not drop audit records), carry
each event's ``hash`` and verify on their own with ``wardgate audit verify --file``; a line
that cannot be written fails the commit, so the call fails closed.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

import openai
import orjson
import pytest
from typer.testing import CliRunner

from gateway.audit.cli import app as audit_cli
from gateway.audit.config import AuditSettings
from gateway.audit.jsonl_source import JsonlSource
from gateway.audit.service import AuditService
from gateway.audit.store import make_store
from gateway.audit.store.base import Filters
from gateway.audit.verify import verify
from gateway.errors import AuditUnavailable
from tests.harness import LIMITED_KEY, PASS_THROUGH, TEST_KEY, gateway_settings, running_gateway


def _events(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def _calls(settings) -> None:
    """Four answered calls (one streamed) and one refused, with the audit logger below INFO."""
    with running_gateway(settings) as gw:
        assert not logging.getLogger("wardgate.audit").isEnabledFor(logging.INFO)
        client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
        for i in range(3):
            client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": f"n {i}"}])
        stream = client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "count to 3"}], stream=True
        )
        assert list(stream)
        with pytest.raises(openai.PermissionDeniedError):
            openai.OpenAI(base_url=gw.base_url, api_key=LIMITED_KEY, max_retries=0).chat.completions.create(
                model="gpt-test", messages=[{"role": "user", "content": "hi"}]
            )


def test_the_log_backend_at_warning_level_still_writes_every_event_and_the_file_verifies(
    fake_upstream, tmp_path
):
    path = tmp_path / "audit.jsonl"
    audit = {"enabled": True, "backend": "log", "log_path": str(path)}
    settings = gateway_settings(
        tmp_path,
        fake_upstream.base_url,
        **{**PASS_THROUGH, "audit": audit, "server": {"log_level": "warning"}},
    )
    wardgate_logger = logging.getLogger("wardgate")
    saved = wardgate_logger.level
    # server.log_level configures the logger only when nothing did before (an earlier
    # gateway of this test process may have): pin the level the operator asked for.
    wardgate_logger.setLevel(logging.WARNING)
    try:
        _calls(settings)
    finally:
        wardgate_logger.setLevel(saved)
    events = _events(path)
    calls = [e for e in events if e["kind"] == "call"]
    assert [e["status"] for e in calls] == [200, 200, 200, 200, 403]
    assert events[0]["kind"] == "chain_open" and events[-1]["kind"] == "chain_close"
    assert all(len(e["hash"]) == 64 for e in events)
    result = CliRunner().invoke(audit_cli, ["verify", "--file", str(path)])
    assert result.exit_code == 0 and "OK" in result.output, result.output


async def test_log_events_lines_carry_the_stores_hashes_and_verify_on_their_own(make_service, tmp_path):
    path = tmp_path / "events.jsonl"
    service = await make_service(log_events=True, log_path=path)
    await asyncio.gather(*(service.record("admin", {"n": i}) for i in range(50)))
    await service.checkpoint()
    store = service.store
    stored = {e["id"]: e["hash"] for e in await store.query(Filters(), limit=1000)}
    await service.close()
    lines = _events(path)
    assert len(lines) == len(stored) + 1  # the chain_close, written after the query
    assert all(stored[e["id"]] == e["hash"] for e in lines if e["id"] in stored)
    assert [e["seq"] for e in lines] == list(range(1, len(lines) + 1))  # commit order
    report = await verify(JsonlSource(path.read_bytes().splitlines()))
    assert report.ok and report.events == len(lines), report.all_breaks()
    # An edited line is caught like an edited row.
    tampered = path.read_bytes().replace(b'"n":7', b'"n":8').splitlines()
    assert not (await verify(JsonlSource(tampered))).ok


async def test_log_lines_on_stderr_verify_among_other_log_output(tmp_path, capsys):
    service = AuditService(AuditSettings(backend="log"), make_store(AuditSettings(backend="log"), tmp_path))
    await service.start()
    await service.record("admin", {"n": 1})
    await service.close()
    err = capsys.readouterr().err
    mixed = ["2026-12-07 11:00:00 WARNING wardgate.http something else", *err.splitlines()]
    source = JsonlSource(mixed)
    report = await verify(source)
    assert source.skipped == 1 and report.ok and report.events == 3


async def test_an_event_line_that_cannot_be_written_fails_closed(tmp_path):
    if not os.path.exists("/dev/full"):  # noqa: ASYNC240 - one stat, before anything runs
        pytest.skip("no /dev/full on this system")
    settings = AuditSettings(backend="log", log_path=Path("/dev/full"))  # every write: ENOSPC
    service = AuditService(settings, make_store(settings, tmp_path))
    # Its chain_open cannot be written. Since a store down at start is an outage, not a setting
    # (89903c6), the service starts closed and keeps retrying: not ready, every record refused.
    await service.start()
    try:
        assert not service.opened and "AuditUnavailable" in (service.open_error or "")
        with pytest.raises(AuditUnavailable):
            await service.record("admin", {"n": 1})
        with pytest.raises(AuditUnavailable):
            await service.ready()
    finally:
        await service.close()
