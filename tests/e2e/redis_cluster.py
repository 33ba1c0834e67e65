"""A private three-node Redis Cluster (no replicas), started and stopped by the harness.

Three ``redis-server --cluster-enabled yes`` processes, each with its own directory (its
``nodes.conf``) and a port whose cluster-bus port (+10000) is free too, joined by
``redis-cli --cluster create … --cluster-replicas 0 --cluster-yes``; ready once every node
reports ``cluster_state:ok`` (about 2 s). The shared Redis on 6379 is never touched.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from gateway.http.launch import LOCALHOST
from tests.waiting import wait_until


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((LOCALHOST, port))
        except OSError:
            return False
    return True


def _cluster_ports(n: int) -> list[int]:
    """n ports, each with its bus port (+10000) free too (random in 20000-54999)."""
    ports: list[int] = []
    while len(ports) < n:
        port = random.randint(20000, 54999)
        if port not in ports and _free(port) and _free(port + 10000):
            ports.append(port)
    return ports


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(
            f"{name} not found (Debian package redis-server / redis-tools): needed for the cluster tests"
        )
    return found


class RedisCluster:
    """Three masters on private ports; ``url`` names the first as the seed node."""

    def __init__(self, root: Path, nodes: int = 3, *, full_coverage: bool = True) -> None:
        self.root = root
        #: ``False``: the nodes left serve their slots when one dies (a node-failure test).
        self.full_coverage = full_coverage
        self.ports = _cluster_ports(nodes)
        self.procs: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        return f"redis://{LOCALHOST}:{self.ports[0]}/0"

    def _cli(self, port: int, *args: str) -> str:
        out = subprocess.run(
            [_binary("redis-cli"), "-h", LOCALHOST, "-p", str(port), *args],
            capture_output=True,
            text=True,
            timeout=30,
        )
        return out.stdout + out.stderr

    def start(self) -> RedisCluster:
        server = _binary("redis-server")
        for port in self.ports:
            node_dir = self.root / f"node-{port}"
            node_dir.mkdir(parents=True, exist_ok=True)
            self.procs.append(
                subprocess.Popen(
                    [
                        server,
                        "--port",
                        str(port),
                        "--bind",
                        LOCALHOST,
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--dir",
                        str(node_dir),
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                        "--cluster-require-full-coverage",
                        "yes" if self.full_coverage else "no",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
        for port in self.ports:
            wait_until(lambda p=port: "PONG" in self._cli(p, "ping"), within=20, interval=0.05)
        created = subprocess.run(
            [
                _binary("redis-cli"),
                "--cluster",
                "create",
                *(f"{LOCALHOST}:{p}" for p in self.ports),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        if created.returncode != 0:
            self.stop()
            raise RuntimeError(f"redis-cli --cluster create failed:\n{created.stdout}{created.stderr}")
        for port in self.ports:
            wait_until(
                lambda p=port: "cluster_state:ok" in self._cli(p, "cluster", "info"),
                within=30,
                interval=0.05,
                message=f"cluster node {port} never reported cluster_state:ok",
            )
        return self

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)

    def keys(self, pattern: str) -> list[str]:
        """Every key matching ``pattern`` on any node (tests look at the layout)."""
        found: list[str] = []
        for port in self.ports:
            found += [k for k in self._cli(port, "--scan", "--pattern", pattern).splitlines() if k]
        return found
