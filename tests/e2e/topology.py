"""The production topology, on one machine and without Docker (tests/e2e and bench/cluster.py).

    client ──► HAProxy (health check GET /readyz) ──► replica a: wardgate serve --workers 2
                                                 └──► replica b: wardgate serve --workers 2
    limits, approvals ──► Redis (one server, or a three-node Redis Cluster)
    keys ──► PostgreSQL (or Redis)      audit ──► PostgreSQL      policy ──► OPA REST server

Every guard is on. The replicas share one ``policies/`` and ``rego/`` directory (as a
ConfigMap would), one approvals answer key (``WARDGATE_APPROVALS_KEY``), one Redis key
prefix and one PostgreSQL schema, both private to this topology and removed by ``stop``; each
replica has its own ``PROMETHEUS_MULTIPROC_DIR`` and audit ``shard_id`` (its chains).
The OPA server is ``tests/opa_server.py`` (the real OPA engine behind OPA's REST API) in a
child process of its own (in a thread of the test process it would share that process's GIL
with the load the tests generate, and its health check would time out the replicas'
readiness); every worker pushes the policy set to it (idempotent ``PUT``s).
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import os
import shutil
import subprocess
import sys
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import redis as redis_sync
import yaml
from cryptography.fernet import Fernet

from gateway.http.launch import LOCALHOST, GatewayProcess, free_port
from tests.e2e.haproxy import HAProxy
from tests.harness import PROVIDER_KEY, REPO, default_keys, upstream_models
from tests.waiting import wait_until

#: The budget race's key: a team of its own (one hash tag), a total budget of its own.
RACE_KEY = "wg-test-race-000000000000000000000000000"
RACE_BUDGET_USD = 0.05

#: Limits on for every call, high enough that only the race's budget is ever reached.
LIMITS_DOC: dict[str, Any] = {
    "scopes": {"key": {"requests_per_minute": 1_000_000, "tokens_per_minute": 10_000_000_000}},
    "run_guards": {},
}


def _sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def topology_keys() -> dict[str, Any]:
    keys = default_keys()
    keys["keys"].append(
        {
            "id": "race",
            "sha256": _sha(RACE_KEY),
            "team": "race",
            "user": "racer",
            "models": ["*"],
            "budgets": {"total": RACE_BUDGET_USD},
        }
    )
    return keys


class OpaProcess:
    """``python tests/opa_server.py --port P`` as a child process (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.log_path = root / "opa.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    def start(self) -> None:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, str(REPO / "tests" / "opa_server.py"), "--port", str(self.port)],
                cwd=REPO,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

        def healthy() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"the OPA server exited: {self.log_path.read_text()[-2000:]}")
            try:
                return httpx.get(self.url + "/health", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, within=120, interval=0.1, message="the OPA server did not start")

    def policy(self, policy_id: str) -> str:
        """A module's text as the server holds it (``GET /v1/policies/<id>``)."""
        resp = httpx.get(f"{self.url}/v1/policies/{policy_id}", timeout=10)
        resp.raise_for_status()
        return str(resp.json()["result"]["raw"])

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Topology:
    """Two (``replicas``) gateway processes of ``workers`` workers behind HAProxy."""

    def __init__(
        self,
        root: Path,
        upstream_url: str,
        *,
        redis_url: str,
        postgres_dsn: str,
        redis_mode: str = "standalone",
        keys_backend: str = "postgres",
        replicas: int = 2,
        workers: int = 2,
        server_close: bool = True,
        log_level: str = "warning",
        check_ms: int = 100,
    ) -> None:
        self.root = root
        self.upstream_url = upstream_url
        self.redis_url, self.redis_mode = redis_url, redis_mode
        self.postgres_dsn = postgres_dsn
        self.keys_backend = keys_backend
        tag = uuid.uuid4().hex[:10]
        self.prefix = f"wgtest:e2e{tag}"
        self.schema = f"wgtest_e2e_{tag}"
        self.approvals_key = Fernet.generate_key().decode()
        self.policies, self.rego = root / "policies", root / "rego"
        root.mkdir(parents=True, exist_ok=True)
        self.opa = OpaProcess(root)
        self.names = [chr(ord("a") + i) for i in range(replicas)]
        self.workers = workers
        self.server_close = server_close
        #: HAProxy's health-check interval: 100 ms makes the tests' drain quick; each check is a
        #: /readyz (Redis, PostgreSQL and OPA round trips), so the benchmark uses 1 s.
        self.check_ms = check_ms
        self.log_level = log_level
        self.replicas: dict[str, GatewayProcess] = {}
        self.lb: HAProxy | None = None

    # -- configuration -----------------------------------------------------------------------

    def _write_policies(self) -> None:
        shutil.copytree(REPO / "policies", self.policies, dirs_exist_ok=True)
        shutil.copytree(REPO / "rego", self.rego, dirs_exist_ok=True)
        (self.policies / "keys.yaml").write_text(yaml.safe_dump(topology_keys()))
        (self.policies / "models.yaml").write_text(yaml.safe_dump(upstream_models(self.upstream_url)))
        (self.policies / "limits.yaml").write_text(yaml.safe_dump(LIMITS_DOC))

    def config(self, name: str) -> dict[str, Any]:
        """One replica's ``wardgate.yaml``: every guard on, every state shared."""
        redis = {"redis_url": self.redis_url, "redis_mode": self.redis_mode, "key_prefix": self.prefix}
        # A generous timeout: on a busy machine a 2 s connect can time out and flap readiness.
        keys: dict[str, Any] = {"backend": self.keys_backend, "redis_timeout_s": 10.0}
        if self.keys_backend == "postgres":
            keys |= {"postgres_dsn": self.postgres_dsn, "postgres_schema": self.schema + "_keys"}
        else:
            keys |= redis
        return {
            "server": {
                "workers": self.workers,
                "log_level": self.log_level,
                # Several of HAProxy's checks (every 100 ms, out after 3): it stops sending
                # first; a connection refused after that is re-dispatched (retry-on conn-failure).
                "shutdown_delay_s": 2.0,
                "shutdown_grace_s": 10.0,
            },
            "policies_dir": str(self.policies),
            "rego_dir": str(self.rego),
            "data_dir": str(self.root / f"data-{name}"),
            "providers": {"max_attempts": 2, "backoff_base_s": 0.01, "timeout_s": 10.0},
            "limits": {"backend": "redis", **redis},
            "approvals": {"backend": "redis", **redis, "hold_s": 30},
            "keys": keys,
            "policy": {
                "engine": "opa",
                "opa_url": self.opa.url,
                "watch_debounce_ms": 100,
                "timeout_ms": 5000,
            },
            "audit": {
                "backend": "postgres",
                "postgres_dsn": self.postgres_dsn,
                "postgres_schema": self.schema,
                "shard_id": f"replica-{name}",
            },
        }

    def env(self, name: str) -> dict[str, str]:
        prom = self.root / f"prom-{name}"
        prom.mkdir(parents=True, exist_ok=True)
        return {
            "WARDGATE_APPROVALS_KEY": self.approvals_key,
            "WARDGATE_TEST_PROVIDER_KEY": PROVIDER_KEY,
            "PROMETHEUS_MULTIPROC_DIR": str(prom),
        }

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self, timeout_s: float = 180.0) -> Topology:
        self._write_policies()
        try:
            self.opa.start()
            for name in self.names:
                self.replicas[name] = GatewayProcess(
                    self.config(name), self.root, env=self.env(name), cwd=REPO
                ).spawn()
            with ThreadPoolExecutor(len(self.names)) as pool:
                list(pool.map(lambda p: p.wait_ready(timeout_s), self.replicas.values()))
            servers = [(name, proc.port) for name, proc in self.replicas.items()]
            self.lb = HAProxy(
                self.root, servers, server_close=self.server_close, check_ms=self.check_ms
            ).start()
            for name in self.names:
                self.lb.wait_state(name, up=True, within=timeout_s)
        except BaseException:
            self.stop()
            raise
        return self

    def restart(self, name: str, timeout_s: float = 240.0) -> GatewayProcess:
        """SIGTERM (drain), wait for the exit, start it again on the same port and config."""
        old = self.replicas[name]
        old.stop(timeout_s=30)
        fresh = GatewayProcess(self.config(name), self.root, env=self.env(name), cwd=REPO, port=old.port)
        self.replicas[name] = fresh.start(timeout_s)
        return fresh

    def stop(self) -> None:
        if self.lb is not None:
            self.lb.stop()
        with ThreadPoolExecutor(max(1, len(self.replicas))) as pool:
            list(pool.map(lambda p: p.stop(), self.replicas.values()))
        self.opa.stop()
        self.cleanup()

    def cleanup(self) -> None:
        """Remove this topology's Redis keys and PostgreSQL schemas (never anyone else's)."""
        if self.redis_mode == "standalone":
            client = redis_sync.Redis.from_url(self.redis_url)
            try:
                for pattern in (f"{self.prefix}:*", "{" + self.prefix + ":*"):
                    keys = list(client.scan_iter(match=pattern, count=1000))
                    for i in range(0, len(keys), 500):
                        client.delete(*keys[i : i + 500])
            finally:
                client.close()
        asyncio.run(self._drop_schemas())

    async def _drop_schemas(self) -> None:
        conn = await asyncpg.connect(self.postgres_dsn)
        try:
            for schema in (self.schema, self.schema + "_keys"):
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()

    # -- helpers for the scenarios -----------------------------------------------------------

    @property
    def url(self) -> str:
        assert self.lb is not None
        return self.lb.url

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def audit_config(self) -> Path:
        """A ``wardgate.yaml`` for ``wardgate audit verify`` against this topology's schema."""
        path = self.root / "audit-cli.yaml"
        doc = copy.deepcopy(self.config(self.names[0]))
        doc["server"] = {"workers": 1}
        path.write_text(yaml.safe_dump(doc))
        return path

    def pids(self) -> list[int]:
        return [proc.pid for proc in self.replicas.values()]


def cli_env(config: Path) -> dict[str, str]:
    return {**os.environ, "WARDGATE_CONFIG": str(config), "WARDGATE_TEST_PROVIDER_KEY": PROVIDER_KEY}
