"""``wardgate audit query|tail|export`` and ``wardgate runs show`` against a live admin API."""

from __future__ import annotations

import asyncio
import socket

import orjson
import pytest
import uvicorn
from audit_helpers import APPROVER, AUDITOR, build_app, finish, make_call
from typer.testing import CliRunner

from gateway.audit.cli import app as audit_cli
from gateway.audit.runs_cli import app as runs_cli
from gateway.audit.stage import AuditStage

WIDE = {"COLUMNS": "240", "WARDGATE_URL": "", "WARDGATE_ADMIN_KEY": ""}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
async def served(make_service):
    service = await make_service()
    stage = AuditStage(service)
    await finish(stage, make_call(team="team-a", run="run-7"))
    await finish(stage, make_call(team="team-a", run="run-7", outcome="deny"))
    await finish(stage, make_call(team="team-b", run="run-8"))
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(build_app(service), host="127.0.0.1", port=port, log_level="warning", lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    for _ in range(1000):
        if server.started:
            break
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    await task


async def _run(app, *args: str):
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=WIDE)


async def test_query_prints_a_table_filtered_by_team(served):
    r = await _run(audit_cli, "query", "--team", "team-a", "--url", served, "--admin-key", AUDITOR)
    assert r.exit_code == 0, r.output
    assert r.output.count("team-a") == 2 and "team-b" not in r.output and "deny" in r.output


async def test_query_json_and_paging_cursor(served):
    r = await _run(
        audit_cli,
        "query",
        "--kind",
        "call",
        "--limit",
        "2",
        "--json",
        "--url",
        served,
        "--admin-key",
        AUDITOR,
    )
    page = orjson.loads(r.output)
    assert len(page["data"]) == 2 and page["next_cursor"]
    r = await _run(
        audit_cli,
        "query",
        "--kind",
        "call",
        "--limit",
        "2",
        "--cursor",
        page["next_cursor"],
        "--json",
        "--url",
        served,
        "--admin-key",
        AUDITOR,
    )
    assert len(orjson.loads(r.output)["data"]) == 1


async def test_export_writes_jsonl_to_a_file(served, tmp_path):
    out = tmp_path / "audit.jsonl"
    r = await _run(
        audit_cli, "export", "--format", "jsonl", "-o", str(out), "--url", served, "--admin-key", AUDITOR
    )
    assert r.exit_code == 0, r.output
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert set(lines[0]) == {"export"} and set(lines[-1]) == {"segment"}  # scope first, segment last
    events = [ev for ev in lines if "kind" in ev]
    # the export's own read is recorded before its snapshot is taken, so it is in it
    assert sorted(ev["kind"] for ev in events) == ["audit_read", "call", "call", "call", "chain_open"]
    assert lines[-1]["segment"]["to_seq"] == events[-1]["seq"] == 5
    r = await _run(audit_cli, "verify", "--file", str(out))
    assert r.exit_code == 0 and "OK" in r.output
    # An incremental export of one chain from seq 3 verifies as a segment and says where it starts.
    inc = tmp_path / "inc.jsonl"
    shard = events[0]["shard"]
    args = [
        "export",
        "-o",
        str(inc),
        "--chain",
        shard,
        "--since-seq",
        "3",
        "--url",
        served,
        "--admin-key",
        AUDITOR,
    ]
    r = await _run(audit_cli, *args)
    assert r.exit_code == 0, r.output
    assert [orjson.loads(x).get("seq") for x in inc.read_bytes().splitlines()][1:-1] == [3, 4, 5, 6, 7]
    r = await _run(audit_cli, "verify", "--file", str(inc))
    assert r.exit_code == 0 and "OK" in r.output, r.output
    assert f"SEGMENT chain {shard} seq 3..7 starts after hash {events[1]['hash']}" in r.output
    # A truncated file (its last event gone, the segment line kept) is caught.
    kept = inc.read_bytes().splitlines()
    inc.write_bytes(b"\n".join(kept[:-2] + kept[-1:]))
    r = await _run(audit_cli, "verify", "--file", str(inc))
    assert r.exit_code == 1 and "deleted" in r.output, r.output


async def test_tail_without_follow_prints_the_latest_events(served):
    r = await _run(audit_cli, "tail", "-n", "2", "--no-follow", "--url", served, "--admin-key", AUDITOR)
    assert r.exit_code == 0, r.output
    assert r.output.index("team-b") < r.output.index("chain_open")  # the two newest, oldest first
    assert "team-a" not in r.output


async def test_runs_show_renders_the_run_as_a_tree(served):
    r = await _run(runs_cli, "show", "run-7", "--url", served, "--admin-key", AUDITOR)
    assert r.exit_code == 0, r.output
    assert "run run-7" in r.output and "calls: 2" in r.output
    assert "send_email" in r.output and "model not allowed for team" in r.output


async def test_cli_reports_http_errors_and_a_missing_key(served):
    r = await _run(audit_cli, "query", "--url", served, "--admin-key", APPROVER)
    assert r.exit_code == 1 and "HTTP 403" in r.output
    r = await _run(runs_cli, "show", "no-such-run", "--url", served, "--admin-key", AUDITOR)
    assert r.exit_code == 1 and "HTTP 404" in r.output
    r = await _run(audit_cli, "query", "--url", served)
    assert r.exit_code == 2 and "admin key" in r.output
