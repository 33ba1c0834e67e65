"""Virtual keys shared by replicas through PostgreSQL (``keys.backend: postgres``), real server.

Same scenarios as the Redis backend: two gateways with separate ``policies/`` share one schema
(created on A works on B; revoked on A refused on B within 1 s, by NOTIFY and, without it, by the
version poll), the CLI writes where WARDGATE_CONFIG says, and PostgreSQL down at start (a TCP
relay to the real server, opened later) is "not ready" until it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
import yaml

from tests.core.test_core_keys_redis_backend import (
    ADMIN,
    REVOCATION_BOUND_S,
    SAFETY_NET_BOUND_S,
    SETTLE_S,
    _create,
    _readyz,
    _status,
    _until,
)
from tests.harness import (
    PASS_THROUGH,
    REPO,
    TEST_KEY,
    RunningGateway,
    free_port,
    gateway_settings,
    running_gateway,
)

PG_DSN = os.environ.get("WARDGATE_TEST_PG_DSN", "postgresql://root@127.0.0.1:5432/test")


def _pg(sql: str, *args: Any) -> Any:
    async def run() -> Any:
        conn = await asyncpg.connect(PG_DSN)
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, run()).result()


@pytest.fixture
def schema(postgres_dsn: str) -> Iterator[str]:
    name = f"wgtest_keys_{uuid.uuid4().hex[:12]}"
    yield name
    _pg(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _settings(root: Path, upstream: object, schema: str, dsn: str = PG_DSN) -> Any:
    keys = {"backend": "postgres", "postgres_dsn": dsn, "postgres_schema": schema, "redis_timeout_s": 1.0}
    return gateway_settings(root, upstream.base_url, **PASS_THROUGH, keys=keys)  # type: ignore[attr-defined]


@pytest.fixture
def replicas(
    tmp_path: Path, upstream: object, schema: str
) -> Iterator[tuple[RunningGateway, RunningGateway]]:
    with (
        running_gateway(_settings(tmp_path / "a", upstream, schema)) as a,
        running_gateway(_settings(tmp_path / "b", upstream, schema)) as b,
    ):
        yield a, b


def test_created_on_one_replica_works_on_the_other_and_revoked_is_refused_within_1s(
    replicas: tuple[RunningGateway, RunningGateway], schema: str
) -> None:
    a, b = replicas
    assert _status(a, TEST_KEY) == 200 and _status(b, TEST_KEY) == 200  # keys.yaml imported once
    assert len(_pg(f'SELECT id FROM "{schema}".keys')) == 3
    created = _create(a, team="pg", id="pg-1")
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    _until(lambda: _status(b, key) == 200, SETTLE_S)
    stored = str(_pg(f'SELECT entry::text FROM "{schema}".keys'))
    assert key not in stored  # only its hash
    assert httpx.delete(a.url + "/admin/keys/pg-1", headers=ADMIN, timeout=30).status_code == 200
    assert _status(a, key) == 401
    took = _until(lambda: _status(b, key) == 401, REVOCATION_BOUND_S)
    assert took <= REVOCATION_BOUND_S
    again = _create(b, team="pg", id="pg-1")
    assert again.status_code == 409 and again.json()["error"]["code"] == "key_exists"
    # The safety net: a change without NOTIFY still arrives through the version poll.
    key2 = _create(b, team="pg", id="pg-2").json()["key"]
    _until(lambda: _status(a, key2) == 200, SETTLE_S)
    _pg(
        f'WITH u AS (UPDATE "{schema}".keys SET entry = entry || \'{{"disabled": true}}\'::jsonb '
        f"WHERE id = 'pg-2' RETURNING 1) UPDATE \"{schema}\".keys_meta SET version = version + 1"
    )
    took = _until(lambda: _status(a, key2) == 401 and _status(b, key2) == 401, SAFETY_NET_BOUND_S)
    assert took <= SAFETY_NET_BOUND_S


def test_cli_writes_to_the_postgres_backend_named_in_wardgate_config(
    replicas: tuple[RunningGateway, RunningGateway], tmp_path: Path, schema: str
) -> None:
    _, b = replicas
    config = tmp_path / "cli.yaml"
    keys = {"backend": "postgres", "postgres_dsn": PG_DSN, "postgres_schema": schema}
    config.write_text(yaml.safe_dump({"policies_dir": str(b.ctx.settings.policies_dir), "keys": keys}))
    env = {**os.environ, "WARDGATE_CONFIG": str(config), "PYTHONPATH": str(REPO), "COLUMNS": "400"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "gateway", "keys", *args]
        return subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env)

    out = cli("create", "--team", "cli", "--id", "pgcli-1")
    assert out.returncode == 0, out.stderr
    assert "postgresql 127.0.0.1:5432" in out.stdout
    key = out.stdout.strip().splitlines()[-1]
    _until(lambda: _status(b, key) == 200, SETTLE_S)
    assert "pgcli-1\tteam=cli" in cli("list").stdout
    assert cli("revoke", "pgcli-1").returncode == 0
    _until(lambda: _status(b, key) == 401, REVOCATION_BOUND_S)


class _Relay:
    """A TCP relay from a free port to the real PostgreSQL: 'down' until ``open()``, then up."""

    def __init__(self) -> None:
        self.port = free_port()
        self._server: socket.socket | None = None

    def open(self) -> None:
        self._server = socket.create_server(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        assert self._server is not None
        with contextlib.suppress(OSError):
            while True:
                client, _ = self._server.accept()
                upstream = socket.create_connection(("127.0.0.1", 5432))
                for src, dst in ((client, upstream), (upstream, client)):
                    threading.Thread(target=self._pipe, args=(src, dst), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(65536):
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        if self._server is not None:
            self._server.close()


def test_postgres_down_at_start_is_not_ready_then_recovers(
    tmp_path: Path, upstream: object, schema: str
) -> None:
    relay = _Relay()
    dsn = f"postgresql://root@127.0.0.1:{relay.port}/test"
    with running_gateway(_settings(tmp_path, upstream, schema, dsn)) as gw:
        status, check = _readyz(gw)
        assert status == 503 and f"127.0.0.1:{relay.port} unreachable" in check and "no virtual keys" in check
        assert _status(gw, TEST_KEY) == 401  # fail closed
        down = _create(gw, team="d", id="d-1")
        assert down.status_code == 503 and down.json()["error"]["code"] == "keys_store_unavailable"
        relay.open()
        try:
            _until(lambda: _readyz(gw)[0] == 200, 10.0, step_s=0.1)
            assert _status(gw, TEST_KEY) == 200
            assert _create(gw, team="d", id="d-1").status_code == 201
        finally:
            relay.close()
