"""A gateway process imports what its configuration uses, not every library it could use.

Presidio and spaCy (redaction) and numpy (the semantic cache) were imported by every gateway
process, also with redaction and the cache off (the MCP gateway imported the redactor's
modules, the cache's routes its stage): ~1.8 s of CPU and ~80 MB of memory per process, paid
by every MCP-only or audit-only deployment and by every gateway a test starts; limits and
approvals on their memory backends imported redis-py (~0.3 s). The check reads
the live process's memory maps (``/proc/<pid>/maps``): spaCy, numpy and hiredis are compiled
extensions, mapped once imported, so what a real ``wardgate serve`` loaded is seen from
outside, without any hook in the product.

``wardgate`` itself imports only the sub-command group the command line names: ``serve`` none.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from gateway.http.launch import GatewayProcess
from tests.harness import PASS_THROUGH, REPO, TEST_KEY, gateway_settings

#: Compiled extensions of libraries a gateway must not load unless configured to use them:
#: spaCy and thinc (redaction), numpy (the semantic cache), hiredis (redis-py: Redis backends).
HEAVY = ("/spacy/", "/thinc/", "/numpy/", "/hiredis/")


def mapped(pid: int) -> set[str]:
    """The heavy libraries among the files mapped into process ``pid``."""
    text = Path(f"/proc/{pid}/maps").read_text()
    return {lib.strip("/") for lib in HEAVY if lib in text}


def test_the_check_sees_spacy_once_it_is_imported() -> None:
    """The maps show an imported spaCy (else the test below would pass whatever loaded)."""
    import spacy  # noqa: F401  (imported for its mapped extensions)

    assert "spacy" in mapped(os.getpid())


def test_a_gateway_with_redaction_and_cache_off_and_memory_stores_loads_no_spacy_numpy_or_redis(
    tmp_path: Path, fake_upstream: Any
) -> None:
    # PASS_THROUGH turns every guard off but the MCP gateway, which stays on (its default):
    # it applies redaction to tool calls when redaction is on, so it must not need it when off.
    # Limits and approvals on their memory backends (the defaults) must not need redis-py.
    on = {"limits": {"enabled": True}, "approvals": {"enabled": True}}
    settings = gateway_settings(tmp_path, fake_upstream.base_url, **{**PASS_THROUGH, **on})
    with GatewayProcess(settings.model_dump(mode="json"), tmp_path, cwd=REPO) as gw:
        answer = httpx.post(
            gw.base_url + "/chat/completions",
            json={"model": "mock-chat", "messages": [{"role": "user", "content": "hello"}]},
            headers={"authorization": f"Bearer {TEST_KEY}"},
            timeout=30,
        )
        assert answer.status_code == 200
        mcp = httpx.post(
            gw.url + "/mcp/nowhere",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"authorization": f"Bearer {TEST_KEY}"},
            timeout=30,
        )
        assert mcp.status_code == 404 and mcp.json()["error"]["code"] == -32004  # the MCP gateway is on
        assert mapped(gw.pid) == set()


_MODULES_AFTER = """
import sys
from gateway import cli
sys.argv = ["wardgate", *sys.argv[1:]]
try:
    cli.main()
except SystemExit:
    pass
print(sorted(m for m in sys.modules if m.startswith("gateway.") and m.endswith("cli")))
"""


def _cli_modules(*argv: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _MODULES_AFTER, *argv], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.splitlines()[-1]


def test_wardgate_imports_only_the_command_group_it_runs() -> None:
    assert _cli_modules("serve", "--help") == "['gateway.cli']"
    assert _cli_modules("keys", "--help") == "['gateway.cli', 'gateway.keys.cli']"
