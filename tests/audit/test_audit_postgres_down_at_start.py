"""PostgreSQL down at start: the audit log behaves like every other component (issue 19).

The gateway starts, ``/readyz`` is 503 naming the audit store's host:port, every call is
refused before it reaches the provider (503 ``audit_unavailable``, retryable: nothing is
answered that could not be audited), and once PostgreSQL answers the chain opens on its own:
ready, calls served and audited, the start's policy revision recorded first (right after
``chain_open``), the chain verifying. PostgreSQL is the real server behind a TCP relay on a
free port that opens later. (A setting error still refuses the start: test_startup_errors.py.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from audit_helpers import PG_DSN

from tests.core.test_core_keys_postgres_backend import _pg, _Relay
from tests.core.test_strict_config import _run
from tests.harness import gateway_settings, hello_chat, readiness, running_gateway
from tests.waiting import wait_until


@pytest.fixture
def relay() -> Iterator[_Relay]:
    relay = _Relay()
    try:
        yield relay
    finally:
        relay.close()


def test_audit_store_down_at_start_refuses_calls_then_recovers(
    tmp_path: Path, upstream: Any, relay: _Relay, pg_schema: str
) -> None:
    audit = {
        "backend": "postgres",
        "postgres_dsn": f"postgresql://root@127.0.0.1:{relay.port}/test",
        "postgres_schema": pg_schema,
    }
    settings = gateway_settings(
        tmp_path, upstream.base_url, audit=audit, limits={"enabled": False}, redaction={"enabled": False}
    )
    with running_gateway(settings) as gw:
        status, checks = readiness(gw.url)
        assert status == 503, checks
        assert checks["audit"].startswith("error:") and f"127.0.0.1:{relay.port}" in checks["audit"], checks
        refused = hello_chat(gw.url)
        assert refused.status_code == 503, refused.text
        error = refused.json()["error"]
        assert error["code"] == "audit_unavailable" and f"127.0.0.1:{relay.port}" in error["message"]
        assert upstream.requests == []  # refused before forwarding: the provider saw nothing

        relay.open()
        wait_until(
            lambda: readiness(gw.url)[0] == 200, within=20, interval=0.1, message="audit never recovered"
        )
        ok = hello_chat(gw.url)
        assert ok.status_code == 200, ok.text

    rows = _pg(f'SELECT kind, body FROM "{pg_schema}".audit_events ORDER BY seq')
    kinds = [row["kind"] for row in rows]
    assert kinds[0] == "chain_open" and kinds[1] == "policy", kinds  # the start's revision first
    assert orjson.loads(rows[1]["body"])["data"]["reason"] == "start"
    assert "call" in kinds and kinds[-1] == "chain_close", kinds
    calls = [orjson.loads(row["body"]) for row in rows if row["kind"] == "call"]
    assert [c["status"] for c in calls] == [200]  # only the served call: the refused one never ran

    config = tmp_path / "verify.yaml"
    config.write_text(orjson.dumps({"audit": {**audit, "postgres_dsn": PG_DSN}}).decode())
    done = _run("audit", "verify", "--config", str(config))
    assert done.returncode == 0, done.stdout + done.stderr
