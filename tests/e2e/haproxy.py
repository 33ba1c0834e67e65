"""A real HAProxy (the Debian package) in front of the replicas, started by the harness.

``ensure_haproxy()`` finds ``haproxy`` or installs it (``apt-get install -y haproxy``, as root;
anyone else gets a clear error naming the command). ``HAProxy`` writes its config, runs
``haproxy -f <cfg> -db`` in the foreground as a child process, and reads server states from
its stats socket (``show stat``), so a test waits for "both replicas UP" instead of sleeping.

The config is what an operator would deploy in front of ``wardgate serve``:

- ``option httpchk GET /readyz`` every ``check_ms`` (a draining replica answers 503 at once
  and is taken out after three failed checks, ``fall 3 rise 1``: one slow or failed check on
  a busy machine does not take a replica out; a check may take up to 5 s);
- ``retry-on conn-failure`` with ``option redispatch``: a request whose connection could not
  be made (nothing was sent) goes to the other replica; a request already sent is never
  replayed (a chat call is not idempotent);
- ``server_close``: one connection per request to the replicas (``option http-server-close``),
  which the rolling-restart test uses so no request can meet a keep-alive connection at the
  moment a draining replica closes it; the benchmark keeps them alive.
- every response carries ``x-e2e-server`` (the replica that served it).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path

from gateway.http.launch import LOCALHOST, free_port
from tests.waiting import wait_until

HAPROXY = "/usr/sbin/haproxy"


def ensure_haproxy() -> str:
    """The haproxy binary, installed from the Debian package when missing (root only)."""
    found = shutil.which("haproxy") or (HAPROXY if os.access(HAPROXY, os.X_OK) else None)
    if found:
        return found
    if os.geteuid() != 0:
        raise RuntimeError(
            "haproxy is not installed and this user cannot install it: run "
            "`sudo apt-get install -y haproxy` (the e2e tests run a real HAProxy)"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = subprocess.run(
        ["apt-get", "install", "-y", "--no-install-recommends", "haproxy"],
        env=env,
        capture_output=True,
        text=True,
    )
    if install.returncode != 0:  # a fresh machine may need its package lists first
        subprocess.run(["apt-get", "update"], env=env, capture_output=True, check=False)
        install = subprocess.run(
            ["apt-get", "install", "-y", "--no-install-recommends", "haproxy"],
            env=env,
            capture_output=True,
            text=True,
        )
    found = shutil.which("haproxy") or (HAPROXY if os.access(HAPROXY, os.X_OK) else None)
    if not found:
        raise RuntimeError(
            f"apt-get install -y haproxy failed:\n{install.stdout[-2000:]}{install.stderr[-2000:]}"
        )
    return found


def config(
    port: int,
    servers: Sequence[tuple[str, int]],
    stats: Path,
    *,
    check_ms: int = 100,
    server_close: bool = True,
) -> str:
    lines = [
        "global",
        f"    stats socket {stats} mode 600 level admin",
        "    maxconn 4096",
        "defaults",
        "    mode http",
        "    timeout connect 2s",
        # A check may take longer than its interval on a busy machine: a slow /readyz is not a
        # failed one (without this HAProxy times a check out after ``inter``).
        "    timeout check 5s",
        "    timeout client 60s",
        "    timeout server 60s",
        "    timeout http-keep-alive 30s",
        "    retries 3",
        "    retry-on conn-failure",
        "    option redispatch 1",
        *(["    option http-server-close"] if server_close else []),
        "frontend gateway",
        f"    bind {LOCALHOST}:{port}",
        "    default_backend replicas",
        "backend replicas",
        "    balance roundrobin",
        "    option httpchk GET /readyz",
        "    http-check expect status 200",
        "    http-response set-header x-e2e-server %[srv_name]",
        f"    default-server inter {check_ms}ms fastinter {check_ms}ms downinter {check_ms}ms fall 3 rise 1",
    ]
    lines += [f"    server {name} {LOCALHOST}:{p} check" for name, p in servers]
    return "\n".join(lines) + "\n"


class HAProxy:
    """``haproxy -f cfg -db`` as a child process; ``url`` is the load balancer's address."""

    def __init__(
        self,
        root: Path,
        servers: Sequence[tuple[str, int]],
        *,
        server_close: bool = True,
        check_ms: int = 100,
    ) -> None:
        self.binary = ensure_haproxy()
        self.port = free_port()
        self.root = root
        self.stats = root / "haproxy.sock"
        self.cfg = root / "haproxy.cfg"
        self.cfg.write_text(
            config(self.port, servers, self.stats, server_close=server_close, check_ms=check_ms)
        )
        self.log_path = root / "haproxy.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    def start(self) -> HAProxy:
        check = subprocess.run([self.binary, "-c", "-f", str(self.cfg)], capture_output=True, text=True)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy refused its config:\n{check.stdout}{check.stderr}")
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen([self.binary, "-f", str(self.cfg), "-db"], stdout=log, stderr=log)
        wait_until(
            self._listening, within=20, interval=0.05, message=f"haproxy did not listen: {self.logs()}"
        )
        return self

    def _listening(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"haproxy exited: {self.logs()}")
        try:
            with socket.create_connection((LOCALHOST, self.port), timeout=0.2):
                return self.stats.exists()
        except OSError:
            return False

    def states(self) -> dict[str, str]:
        """Server name → status (``UP``, ``DOWN``, ``MAINT`` …) from the stats socket."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2)
            sock.connect(str(self.stats))
            sock.sendall(b"show stat\n")
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        rows = data.decode().splitlines()
        header = rows[0].lstrip("# ").split(",")
        out = {}
        for row in rows[1:]:
            cells = dict(zip(header, row.split(","), strict=False))
            if cells.get("pxname") == "replicas" and cells.get("svname") not in ("FRONTEND", "BACKEND"):
                out[cells["svname"]] = cells.get("status", "")
        return out

    def wait_state(self, name: str, up: bool, within: float = 60.0) -> None:
        want = "UP" if up else "DOWN"
        wait_until(
            lambda: self.states().get(name, "").startswith(want),
            within=within,
            interval=0.05,
            message=f"haproxy never saw {name} {want}: {self.states()}",
        )

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=10)
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
