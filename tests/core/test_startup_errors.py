"""A gateway that cannot start says why in one paragraph: the component, the failure, host:port.

The real CLI in a fresh process, with a PostgreSQL setting that is wrong (a database that does
not exist; an unreachable server is an outage, not a start error): the start fails (non-zero
exit), the message names the component and what is wrong, and there is no traceback unless
``--debug``.
"""

from __future__ import annotations

import socket
import uuid
from pathlib import Path

from tests.core.test_strict_config import _run, _tree


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Redis or PostgreSQL unreachable at start is no longer a start-up error: every component
# that needs it starts, reports not ready naming the component and host:port, fails closed and
# recovers (tests/core/test_dependency_down_at_start.py, tests/audit/
# test_audit_postgres_down_at_start.py, which also keeps a PostgreSQL setting error a start error).


def test_a_postgres_setting_error_is_one_paragraph_without_a_traceback(tmp_path: Path) -> None:
    missing = f"wgtest_nodb_{uuid.uuid4().hex[:8]}"
    config = _tree(
        tmp_path,
        f"server:\n  port: {_free_port()}\naudit:\n  backend: postgres\n"
        f"  postgres_dsn: postgresql://root@127.0.0.1:5432/{missing}\n",
    )
    done = _run("serve", "--config", str(config))
    err = done.stderr + done.stdout
    assert done.returncode != 0 and "audit cannot start" in err and missing in err, err
    assert "Traceback" not in err

    debug = _run("serve", "--debug", "--config", str(config))
    assert debug.returncode != 0 and "Traceback" in debug.stderr + debug.stdout
