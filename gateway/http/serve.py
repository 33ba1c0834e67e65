"""``run(**uvicorn_options)``: ``uvicorn.run`` for ``wardgate serve``, with one change for drains.

With several workers, uvicorn's supervisor binds the listening socket and keeps its own copy
of it until every worker has exited: the kernel then still completes new connections into
the backlog while the workers drain, and those clients hang until the process ends. Here the
supervisor closes its copy as soon as it is told to stop, so once the workers close theirs
(``shutdown_delay_s`` after SIGTERM) new connections are refused, and a load balancer or
client retries elsewhere at once.
"""

from __future__ import annotations

import sys
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

#: uvicorn's exit status when a worker could not start (``uvicorn.server.STARTUP_FAILURE``).
_STARTUP_FAILURE = 3


class _Supervisor(Multiprocess):
    """uvicorn's multi-worker supervisor that lets go of the listening socket when stopping."""

    def _release_listener(self) -> None:
        for sock in self.sockets:
            sock.close()

    def handle_term(self) -> None:
        self._release_listener()
        super().handle_term()

    def handle_int(self) -> None:
        self._release_listener()
        super().handle_int()


def run(app: str, **options: Any) -> None:
    """Serve ``app`` (an import string) as ``uvicorn.run`` would, with ``_Supervisor`` for workers."""
    config = uvicorn.Config(app, **options)
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
