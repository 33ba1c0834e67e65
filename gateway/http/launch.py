"""Start a gateway on a free port, learn its URL, stop it: the one launcher of the repository.

The tests (``tests/harness.py``), the reference orchestrator's demo and load mode
(``orchestrator/local_gateway.py``) and the benchmarks (``bench/common.py``) all need a
real gateway on a free local port; they used to carry three copies of this. Two ways:

* ``serve_app(app)`` / ``serve_in_thread(settings)``: uvicorn in a background thread of
  this process, with its own event loop. The caller keeps the app object, so tests can look
  at the live ``AppContext`` while driving the gateway over HTTP.
* ``GatewayProcess``: ``wardgate serve`` (``python -m gateway serve``) in a child process
  with a config file, for what a thread cannot show: several replicas sharing Redis, a
  crash (``kill``), a signal, a process pinned to a core (``prefix=["taskset", ...]``), or
  a demo that must look like a deployment.

Both listen on 127.0.0.1 only. Nothing here is used by ``wardgate serve`` itself; it is
the product's own way to run the product, kept free of test doubles (a gateway launched
here serves whatever its config and the installed provider plugins say).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

if TYPE_CHECKING:
    import uvicorn

    from gateway.settings import Settings

LOCALHOST = "127.0.0.1"
C = TypeVar("C")


def free_socket() -> socket.socket:
    """A TCP socket bound to a free local port (not listening yet; uvicorn takes it over)."""
    # IPPROTO_TCP explicitly: asyncio disables Nagle's algorithm only on sockets that say so,
    # and without it every keep-alive request to a local gateway waited ~45 ms.
    # No SO_REUSEADDR: with it, Linux may hand out a port another SO_REUSEADDR socket has
    # bound but not yet put in listen, and the later listen() fails with EADDRINUSE (seen with
    # many test processes starting gateways at once). A fresh ephemeral port needs no reuse.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind((LOCALHOST, 0))
    return sock


def free_port() -> int:
    """A local port free right now (a child process binds it itself, so a race is possible)."""
    with contextlib.closing(free_socket()) as sock:
        return int(sock.getsockname()[1])


#: No proxy, whatever ``HTTP_PROXY`` says: the gateway asked is always on this machine.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def healthy(url: str, timeout_s: float = 1.0) -> bool:
    """Whether ``url``'s ``/healthz`` answers 200 (stdlib only: the launcher adds no client)."""
    try:
        with _DIRECT.open(url + "/healthz", timeout=timeout_s) as resp:
            return bool(resp.status == 200)
    except (OSError, http.client.HTTPException):
        return False


# ---- in this process ---------------------------------------------------------------------


@dataclass
class ServedApp:
    """An app served from a background thread; ``url`` is ``http://127.0.0.1:<port>``."""

    url: str
    server: uvicorn.Server
    app: Any

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def ctx(self) -> Any:
        """The live AppContext of a gateway app (for assertions; drive it over HTTP)."""
        return self.app.state.ctx

    def component(self, kind: type[C]) -> C:
        """The app's component of class ``kind`` (for assertions on what it built at start)."""
        return next(c for c in self.app.state.components if isinstance(c, kind))


@contextlib.contextmanager
def serve_app(
    app: Any,
    *,
    startup_timeout_s: float = 30.0,
    lifespan: str = "on",
    graceful_s: float = 3.0,
    stop_timeout_s: float = 15.0,
) -> Iterator[ServedApp]:
    """Serve an ASGI app on a free port from a daemon thread until the block ends.

    The gateway's own HTTP protocol class is used (header and body limits, timeouts), so a
    gateway served here behaves on the wire like ``wardgate serve``.
    """
    import uvicorn

    from gateway.http.protocol import HTTP_PROTOCOL

    sock = free_socket()
    config = uvicorn.Config(
        app,
        log_level="warning",
        lifespan=lifespan,  # type: ignore[arg-type]
        loop="asyncio",
        http=HTTP_PROTOCOL,
        ws="none",
        access_log=False,
        timeout_graceful_shutdown=graceful_s,  # type: ignore[arg-type]
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError("the gateway failed to start (see the log above)")
            if time.monotonic() > deadline:
                server.should_exit = True
                raise TimeoutError("the gateway did not start in time")
            time.sleep(0.02)
        yield ServedApp(f"http://{LOCALHOST}:{sock.getsockname()[1]}", server, app)
    finally:
        server.should_exit = True
        thread.join(timeout=stop_timeout_s)
        sock.close()


@contextlib.contextmanager
def serve_in_thread(settings: Settings, *, startup_timeout_s: float = 30.0) -> Iterator[ServedApp]:
    """``create_app(settings)`` served from a background thread (see ``serve_app``)."""
    from gateway.app import create_app

    with serve_app(create_app(settings), startup_timeout_s=startup_timeout_s) as served:
        yield served


# ---- in a child process ------------------------------------------------------------------


def _plain(obj: Any) -> Any:
    """Settings dumped with paths and tuples, as YAML's safe dumper accepts them."""
    if isinstance(obj, Mapping):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_plain(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


class GatewayProcess:
    """``wardgate serve`` in a child process, configured by a YAML file written under ``root``.

    ``config`` is a ``wardgate.yaml`` document; its ``server.host`` and ``server.port`` are
    set to 127.0.0.1 and ``port`` (a free one by default). ``argv`` replaces the command
    (default: this interpreter, ``-m gateway serve``), ``prefix`` goes in front of it
    (``taskset -c 0``), ``env`` is added to this process's environment. Output goes to
    ``log_path``. ``new_session`` puts the child in a process group of its own, as a terminal
    would (a signal to the group then misses the caller). ``spawn`` returns at once (start
    several, then ``wait_ready`` each); ``start`` does both.
    """

    def __init__(
        self,
        config: Mapping[str, Any],
        root: Path,
        *,
        env: Mapping[str, str] | None = None,
        argv: Sequence[str] | None = None,
        prefix: Sequence[str] = (),
        port: int | None = None,
        cwd: Path | None = None,
        new_session: bool = False,
    ) -> None:
        self.port = port if port is not None else free_port()
        server = {**dict(config.get("server") or {}), "host": LOCALHOST, "port": self.port}
        self.config_path = root / f"wardgate-{self.port}.yaml"
        self.config_path.write_text(yaml.safe_dump(_plain({**config, "server": server}), sort_keys=False))
        self.env = {**os.environ, **(env or {}), "WARDGATE_CONFIG": str(self.config_path)}
        self.argv = [*prefix, *(argv if argv is not None else [sys.executable, "-m", "gateway", "serve"])]
        self.cwd = cwd
        self.new_session = new_session
        self.log_path = root / f"gateway-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{LOCALHOST}:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + "/v1"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError("the gateway process was not spawned")
        return self.proc.pid

    def spawn(self) -> GatewayProcess:
        """Start the child process and return at once."""
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=self.new_session,
            )
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> GatewayProcess:
        """Wait until ``/healthz`` answers 200; raise with the log's tail if it exits or stalls."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc is None or self.proc.poll() is not None:
                raise RuntimeError(f"the gateway process exited during start-up:\n{self.logs()[-3000:]}")
            if healthy(self.url):
                return self
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"the gateway did not answer within {timeout_s:.0f}s:\n{self.logs()[-3000:]}")

    def start(self, timeout_s: float = 60.0) -> GatewayProcess:
        return self.spawn().wait_ready(timeout_s)

    def stop(self, timeout_s: float = 15.0) -> None:
        """SIGTERM (the gateway drains), then SIGKILL if it is still there after ``timeout_s``."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: a crash, no drain."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
