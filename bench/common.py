"""Shared benchmark plumbing: a fast fake upstream, a gateway process, wrk, CPU accounting.

The gateway process is started by ``gateway.http.launch`` (the launcher the tests and the
orchestrator use too).

Every gateway benchmark compares, in one run, the same load sent directly to the fake
upstream and sent through the gateway. The gateway is pinned to core 0; the upstream and
the load generator share core 1 (``taskset``), so the gateway's numbers are its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway.http.launch import GatewayProcess
from gateway.http.launch import free_port as free_port

REPO = Path(__file__).resolve().parent.parent
BENCH_KEY = "wg-bench-0000000000000000000000000000000"
ADMIN_KEY = "wg-bench-admin-00000000000000000000000000"
CHAT_BODY = {
    "model": "bench-model",
    "messages": [
        {"role": "system", "content": "You are a helpful assistant for an online shop."},
        {
            "role": "user",
            "content": "What is the status of my order 1234? It was placed last Tuesday, thanks a lot!",
        },
    ],
    "max_tokens": 64,
}


def pinned(cmd: list[str], core: int) -> list[str]:
    return (
        ["taskset", "-c", str(core), *cmd]
        if shutil.which("taskset") and os.cpu_count() and os.cpu_count() > 1
        else cmd
    )


def wait_http(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            httpx.get(url, timeout=1)
            return
        time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer")


@contextlib.contextmanager
def fake_upstream(core: int = 1, latency_ms: float = 0.0) -> Iterator[str]:
    """The fast fake upstream; ``latency_ms`` before every answer (a model's think time)."""
    port = free_port()
    cmd = [sys.executable, str(REPO / "tests" / "fake_openai.py"), "--port", str(port), "--fast"]
    if latency_ms:
        cmd += ["--latency-ms", str(latency_ms)]
    proc = subprocess.Popen(
        pinned(cmd, core),
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/v1/models")
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def sha(key: str) -> str:
    import hashlib

    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class Gateway:
    url: str
    pid: int


@contextlib.contextmanager
def gateway(
    upstream_url: str,
    config: dict[str, Any],
    core: int = 0,
    extra_files: dict[str, Any] | None = None,
    key_extra: dict[str, Any] | None = None,
    wrap: list[str] | None = None,
    code: Path = REPO,
) -> Iterator[Gateway]:
    """A gateway process (one worker) with ``config`` merged over a pass-through base;
    ``wrap``: a command to run it under (``valgrind --tool=callgrind …``); ``code``: the
    checkout whose ``gateway`` package it runs (another worktree: before/after in one run)."""
    root = Path(tempfile.mkdtemp(prefix="wg-bench-"))
    policies = root / "policies"
    shutil.copytree(REPO / "policies", policies)
    rego = root / "rego"
    if (REPO / "rego").exists():
        shutil.copytree(REPO / "rego", rego)
    (policies / "keys.yaml").write_text(
        yaml.safe_dump(
            {
                "keys": [
                    {
                        "id": "bench",
                        "sha256": sha(BENCH_KEY),
                        "team": "bench",
                        "user": "bench",
                        "models": ["*"],
                        **(key_extra or {}),
                    }
                ],
                "admin_keys": [
                    {
                        "id": "bench-admin",
                        "sha256": sha(ADMIN_KEY),
                        "user": "bench-admin",
                        "roles": ["admin"],
                        "groups": ["finance"],
                    }
                ],
            }
        )
    )
    dep = {"provider": "openai", "base_url": upstream_url, "api_key_env": "BENCH_PROVIDER_KEY"}
    (policies / "models.yaml").write_text(
        yaml.safe_dump(
            {
                "models": {
                    "bench-model": {"endpoints": ["chat.completions", "responses"], "deployments": [dep]},
                    "bench-embed": {"endpoints": ["embeddings"], "deployments": [dep]},
                }
            }
        )
    )
    for name, doc in (extra_files or {}).items():
        (policies / name).write_text(yaml.safe_dump(doc))
    base = {
        "server": {"log_level": "warning"},
        "policies_dir": str(policies),
        "rego_dir": str(rego),
        "data_dir": str(root / "data"),
        "limits": {"enabled": False},
        "policy": {"enabled": False},
        "redaction": {"enabled": False},
        "approvals": {"enabled": False},
        "audit": {"enabled": False},
    }
    proc = GatewayProcess(
        _merge(base, config),
        root,
        env={"BENCH_PROVIDER_KEY": "sk-bench"},
        prefix=pinned(list(wrap or []), core),
        cwd=code,
    )
    try:
        proc.start(timeout_s=600 if wrap else 60)
        yield Gateway(proc.base_url, proc.pid)
    finally:
        proc.stop()
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def minimal_passthrough(
    upstream_url: str,
    core: int = 0,
    app: str = "bench.minimal_passthrough:app",
    env: str = "MINIMAL_UPSTREAM",
) -> Iterator[Gateway]:
    """bench/minimal_passthrough.py (or ``app``, told its upstream in ``env``) under uvicorn,
    pinned like the gateway: the ceiling."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        app,
        "--port",
        str(port),
        "--loop",
        "uvloop",
        "--http",
        "httptools",
        "--no-access-log",
        "--log-level",
        "warning",
    ]
    proc = subprocess.Popen(
        pinned(cmd, core),
        cwd=REPO,
        env={**os.environ, env: upstream_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            time.sleep(0.1)
        yield Gateway(f"http://127.0.0.1:{port}/v1", proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def cpu_seconds(pid: int) -> float:
    """user+system CPU of a process and its children so far (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for p in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int

    def row(self) -> str:
        return (
            f"{self.rps:9.0f} rps  p50 {self.p50_ms:7.3f} ms  p99 {self.p99_ms:7.3f} ms  errors {self.errors}"
        )


_LUA = """
wrk.method = "POST"
wrk.body = {body}
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer {key}"
{extra}"""


def wrk(
    url: str,
    body: dict[str, Any],
    conns: int,
    seconds: int,
    core: int = 1,
    key: str = BENCH_KEY,
    headers: dict[str, str] | None = None,
) -> WrkResult:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: apt-get install -y wrk")
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        extra = "".join(
            f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items()
        )
        f.write(_LUA.format(body=json.dumps(json.dumps(body)), key=key, extra=extra))
        script = f.name
    cmd = pinned(["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", "--latency", "-s", script, url], core)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    os.unlink(script)
    return _parse_wrk(out)


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _parse_wrk(out: str) -> WrkResult:
    def pct(p: str) -> float:
        m = re.search(rf"^\s*{p}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return _ms(m.group(1), m.group(2)) if m else float("nan")

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    reqs = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    errors = 0
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        errors += int(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        errors += sum(int(x) for x in m.groups())
    return WrkResult(rps, pct("50"), pct("99"), reqs, errors)
