"""``run(**uvicorn_options)``: ``uvicorn.run`` for ``wardgate serve``, with one change for drains.

With several workers, uvicorn's supervisor binds the listening socket and keeps its own copy
of it until every worker has exited: the kernel then still completes new connections into
the backlog while the workers drain, and those clients hang until the process ends. Here the
supervisor closes its copy as soon as it is told to stop, so once the workers close theirs
(``shutdown_delay_s`` after SIGTERM) new connections are refused, and a load balancer or
client retries elsewhere at once.

Metrics (``PROMETHEUS_MULTIPROC_DIR``): the starting process empties the directory before
any worker writes (values of an earlier run's processes would otherwise be added to this
run's), and the supervisor drops the live gauges of a worker it finds dead before it starts
its replacement (a crashed worker cannot do it itself). See
``gateway.observability.multiproc``.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from gateway.observability import multiproc

#: uvicorn's exit status when a worker could not start (``uvicorn.server.STARTUP_FAILURE``).
_STARTUP_FAILURE = 3


class _Supervisor(Multiprocess):
    """uvicorn's multi-worker supervisor that lets go of the listening socket when stopping."""

    def _release_listener(self) -> None:
        for sock in self.sockets:
            sock.close()

    def keep_subprocess_alive(self) -> None:
        before = {process.pid for process in self.processes}
        super().keep_subprocess_alive()
        for pid in before - {process.pid for process in self.processes}:
            if pid is not None:
                multiproc.mark_dead(pid)

    def handle_term(self) -> None:
        self._release_listener()
        super().handle_term()

    def handle_int(self) -> None:
        self._release_listener()
        super().handle_int()


def run(app: str, **options: Any) -> None:
    """Serve ``app`` (an import string) as ``uvicorn.run`` would, with ``_Supervisor`` for workers."""
    config = uvicorn.Config(app, **options)
    multiproc.clear_directory()
    if config.workers > 1:
        _Supervisor(config, sockets=[config.bind_socket()]).run()
        return
    server = uvicorn.Server(config)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(_STARTUP_FAILURE)
