"""``server.log_format: json``: every line is one JSON object carrying the call's ids, never secrets."""

from __future__ import annotations

import json
import logging
import socket
import uuid
from pathlib import Path

from gateway.call import Call, Endpoint, Principal
from gateway.logs import CURRENT_CALL, JsonFormatter
from tests.core.test_strict_config import _run, _tree

SECRET = "wg-never-logged-0123456789abcdef"


def test_a_record_inside_a_call_carries_its_ids_and_no_key_or_content() -> None:
    call = Call(
        request_id="req-1",
        endpoint=Endpoint.CHAT,
        body={"messages": [{"role": "user", "content": "my ssn 123-45-6789"}]},
        headers={"authorization": f"Bearer {SECRET}"},
    )
    call.principal = Principal(key_id="k1", team="billing")
    call.agent_id, call.run_id = "triage", "run-7"
    record = logging.LogRecord("wardgate.x", logging.WARNING, __file__, 1, "upstream %s slow", ("p1",), None)
    record.approval_id = "ap-1"
    token = CURRENT_CALL.set(call)
    try:
        line = JsonFormatter().format(record)
    finally:
        CURRENT_CALL.reset(token)
    doc = json.loads(line)
    assert (
        doc["message"] == "upstream p1 slow" and doc["level"] == "WARNING" and doc["logger"] == "wardgate.x"
    )
    assert (doc["request_id"], doc["key_id"], doc["team"], doc["agent"], doc["run"]) == (
        "req-1",
        "k1",
        "billing",
        "triage",
        "run-7",
    )
    assert doc["approval_id"] == "ap-1"
    assert SECRET not in line and "123-45-6789" not in line
    # outside a call: no ids invented
    assert "key_id" not in json.loads(JsonFormatter().format(record))


def test_serve_writes_json_lines_also_for_uvicorn_and_a_failed_start(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    # PostgreSQL unreachable is no longer a start error (the gateway starts not ready and
    # recovers); a setting error still is: a database that does not exist.
    missing = f"wgtest_nodb_{uuid.uuid4().hex[:8]}"
    config = _tree(
        tmp_path,
        f"server:\n  log_format: json\n  port: {dead}\naudit:\n  backend: postgres\n"
        f"  postgres_dsn: postgresql://root@127.0.0.1:5432/{missing}\n",
    )
    done = _run("serve", "--config", str(config))
    assert done.returncode != 0
    lines = [json.loads(line) for line in done.stderr.splitlines() if line.strip()]
    assert any(d["logger"].startswith("uvicorn") for d in lines)
    assert any("audit cannot start" in d["message"] for d in lines)
