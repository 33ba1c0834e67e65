"""``wardgate`` starts in a fresh interpreter and lists every component's sub-commands.

The CLI imports the sub-command modules before anything else (``make run`` is ``wardgate
serve``), so an import cycle that only bites in that order (``gateway.policy.derived``
imported before ``gateway.policy.engines``) stops every command; an in-process test, which
imports the gateway first, cannot see it.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.components import compose

REPO = Path(__file__).resolve().parents[2]


def test_wardgate_help_lists_every_components_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gateway", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    commands = {name for component in compose() for name, _ in component.commands}
    assert commands == {"keys", "spend", "approvals", "policy", "audit", "runs", "cache"}
    for name in commands | {"serve"}:
        assert name in done.stdout
