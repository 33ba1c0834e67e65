"""State that must be shared is shared or the start is refused.

With several workers the ``memory`` backends would split limits and approvals per worker
(a 3/min key limit admitted 6 with 2 workers; an approval held by one worker answered 404 on
the other), so ``wardgate serve`` refuses them unless ``allow_per_process_state`` says that is
wanted; a Redis approvals backend needs the sealing key every replica shares.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.fernet import Fernet

from gateway.configcheck import check_all
from tests.core.test_strict_config import _run, _tree


def test_two_workers_on_memory_backends_refuse_the_start_saying_what_to_set(tmp_path: Path) -> None:
    config = _tree(tmp_path, "server:\n  workers: 2\n")
    done = _run("serve", "--config", str(config))
    assert done.returncode == 2 and "Traceback" not in done.stderr and "listening" not in done.stdout
    assert "limits.backend is memory with 2 workers" in done.stderr
    assert "approvals.backend is memory with 2 workers" in done.stderr
    assert "console.session_backend is memory with 2 workers" in done.stderr
    assert (
        "set limits.backend: redis" in done.stderr and "server.allow_per_process_state: true" in done.stderr
    )
    # --workers on the command line counts too
    one = _tree(tmp_path / "one")
    done = _run("serve", "--workers", "3", "--config", str(one))
    assert done.returncode == 2 and "limits.backend is memory with 3 workers" in done.stderr


def test_the_opt_in_disabled_guards_or_redis_backends_pass(tmp_path: Path) -> None:
    key = {"WARDGATE_APPROVALS_KEY": Fernet.generate_key().decode()}
    opt_in = _tree(tmp_path / "a", "server:\n  workers: 2\n  allow_per_process_state: true\n")
    assert check_all(opt_in, environ={}) == []
    disabled = _tree(
        tmp_path / "b",
        "server:\n  workers: 2\nlimits: {enabled: false}\napprovals: {enabled: false}\n"
        "console: {enabled: false}\n",
    )
    assert check_all(disabled, environ={}) == []
    shared = _tree(
        tmp_path / "c",
        "server:\n  workers: 2\nlimits: {backend: redis}\napprovals: {backend: redis}\n",
        # the console's sessions follow the approvals onto Redis (session_backend: auto)
    )
    assert check_all(shared, environ=key) == []


def test_redis_approvals_without_the_shared_key_refuse_the_start(tmp_path: Path) -> None:
    config = _tree(tmp_path, "approvals:\n  backend: redis\n")
    done = _run("serve", "--config", str(config))
    assert done.returncode == 2
    assert "approvals.backend is redis but WARDGATE_APPROVALS_KEY is unset" in done.stderr
    done = _run("config", "check", "--config", str(config))
    assert done.returncode == 1 and "WARDGATE_APPROVALS_KEY is unset" in done.stderr
