"""A gateway that cannot start says why in one paragraph: the component, the failure, host:port.

The real CLI in a fresh process, with a service address nothing listens on: the start fails
(non-zero exit), the message names the component and the configured address, and there is no
traceback unless ``--debug``.
"""

from __future__ import annotations

import socket
from pathlib import Path

from tests.core.test_strict_config import _run, _tree


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_postgres_unreachable_names_host_and_port_without_a_traceback(tmp_path: Path) -> None:
    port, dead = _free_port(), _free_port()
    config = _tree(
        tmp_path,
        f"server:\n  port: {port}\naudit:\n  backend: postgres\n"
        f"  postgres_dsn: postgresql://root@127.0.0.1:{dead}/test\n",
    )
    done = _run("serve", "--config", str(config))
    assert done.returncode != 0
    err = done.stderr + done.stdout
    assert "audit cannot start" in err
    assert f"audit.postgres_dsn → 127.0.0.1:{dead}" in err
    assert "Traceback" not in err

    debug = _run("serve", "--debug", "--config", str(config))
    assert debug.returncode != 0 and "Traceback" in debug.stderr + debug.stdout


# Redis unreachable at start is no longer a start-up error: every component that needs it
# starts, reports not ready naming the component and host:port, fails closed and recovers
# (tests/core/test_dependency_down_at_start.py).
