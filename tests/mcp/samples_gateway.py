"""A gateway with the sample MCP servers behind ``/mcp/crm`` and ``/mcp/payments``.

Both samples (orchestrator/mcp_servers/) run in this process on free ports; the gateway's
``mcp.yaml`` names them and the test team (``tests.harness.TEST_KEY``) has its high-stakes
tools judged where they run (``high_stakes_at: mcp``), as an operator whose agents act
through ``/mcp`` would configure it. Import the fixtures into a test module to use them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import yaml

from orchestrator.mcp_servers import ToolBoxServer, crm_server, payments_server
from tests.harness import RunningGateway, _sha, default_keys, gateway_settings, running_gateway

#: An admin of every approver group (the support leads' refunds included).
LEAD_KEY = "wg-mcp-samples-lead-00000000000000000"


@dataclass
class Samples:
    gateway: RunningGateway
    crm: ToolBoxServer
    payments: ToolBoxServer

    def url(self, server: str) -> str:
        return f"{self.gateway.url}/mcp/{server}"


def _policy_for_mcp_team(path: Any, team: str) -> None:
    policy = yaml.safe_load(path.read_text())
    policy.setdefault("teams", {}).setdefault(team, {})["high_stakes_at"] = "mcp"
    path.write_text(yaml.safe_dump(policy))


@pytest.fixture(scope="module", name="samples")
def samples_fixture(fake_upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Samples]:
    crm, payments = crm_server(), payments_server()
    with crm.serve() as crm_url, payments.serve(json_response=True) as payments_url:
        settings = gateway_settings(
            tmp_path_factory.mktemp("mcp-samples"),
            fake_upstream.base_url,  # type: ignore[attr-defined]
            approvals={"hold_s": 20},
            policy={"watch": False, "test_on_reload": False},
        )
        servers = {
            "crm": {"url": crm_url, "timeout_s": 10},
            "payments": {"url": payments_url, "timeout_s": 10},
        }
        keys = default_keys()
        keys["admin_keys"].append(
            {"id": "lead", "sha256": _sha(LEAD_KEY), "user": "lead", "roles": ["admin"], "groups": ["*"]}
        )
        (settings.policies_dir / "keys.yaml").write_text(yaml.safe_dump(keys))
        (settings.policies_dir / "mcp.yaml").write_text(yaml.safe_dump({"servers": servers}))
        _policy_for_mcp_team(settings.policies_dir / "policy.yaml", "test")
        with running_gateway(settings) as gw:
            yield Samples(gw, crm, payments)
