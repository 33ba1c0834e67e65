"""Settings for end-to-end tests of the approval queue through the real gateway.

The real policies decide (``rego/response.rego``: a ``transfer_funds`` call above the
``high_stakes`` threshold of ``policies/policy.yaml`` needs a ``finance`` approver); limits,
redaction and audit are off so the tests see the approval queue alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from gateway.settings import Settings
from tests.harness import _sha, default_keys, gateway_settings

#: An admin key held by the same person ("tester") as the test agent key: four-eyes refuses it.
SELF_APPROVER_KEY = "wg-admin-self-approver-test-0000000000"
#: The held tool call every approval end-to-end test makes: a transfer the shipped policy holds
#: for a finance approver above 1000.
TRANSFER_TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "transfer_funds",
            "parameters": {
                "type": "object",
                "properties": {"amount": {"type": "number"}, "to": {"type": "string"}},
            },
        },
    }
]
TRANSFER_MESSAGES = [{"role": "user", "content": "Pay the ACME invoice"}]
TRANSFER_ARGS = {"amount": 5000, "to": "ACME"}
OFF = {"limits": {"enabled": False}, "redaction": {"enabled": False}, "audit": {"enabled": False}}


def approvals_settings(
    root: Path, upstream_url: str, *, approval_ttl_s: float | None = None, **approvals: Any
) -> Settings:
    """``approval_ttl_s`` rewrites the policy data's default approval TTL (the policy's items
    carry ``ttl_s``, which wins over the approvals settings)."""
    settings = gateway_settings(root, upstream_url, approvals=approvals, **OFF)
    if approval_ttl_s is not None:
        path = settings.policies_dir / "policy.yaml"
        doc = yaml.safe_load(path.read_text())
        doc["approval_ttl_s"] = approval_ttl_s
        path.write_text(yaml.safe_dump(doc))
    keys = default_keys()
    keys["admin_keys"].append(
        {
            "id": "self-approver",
            "sha256": _sha(SELF_APPROVER_KEY),
            "user": "tester",
            "roles": ["approver"],
            "groups": ["finance"],
        }
    )
    (settings.policies_dir / "keys.yaml").write_text(yaml.safe_dump(keys))
    return settings
