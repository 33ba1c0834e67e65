"""Reviewers of an approval's group see the real values of a held tool call; nobody else does.

The caller's IBAN is redacted before the model sees it (``<IBAN_CODE_1>``); the model answers
``transfer_funds(to="<IBAN_CODE_1>")``. A finance reviewer must see the real IBAN to judge the
transfer, whether or not the gateway restores IBANs into the caller's tool arguments
(``tool_arguments``, off for IBANs by default); a support reviewer, an auditor, the list,
the audit log and the Redis record see only the placeholder.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest
import redis as redis_sync
import yaml
from typer.testing import CliRunner

from gateway.approvals.cli import app as cli_app
from gateway.redaction.config import Action, DirectionalAction
from tests.approvals.conftest import new_approval
from tests.approvals.e2e_app import approvals_settings
from tests.harness import ADMIN_KEY, APPROVER_KEY, AUDITOR_KEY, TEST_KEY, _sha, default_keys, running_gateway
from tests.waiting import wait_until

IBAN = "DE89370400440532013000"
PLACEHOLDER = "<IBAN_CODE_1>"
SUPPORT_KEY = "wg-admin-support-approver-0000000000000"
TOOLS = [{"type": "function", "function": {"name": "transfer_funds", "parameters": {"type": "object"}}}]
MESSAGES = [{"role": "user", "content": f"Pay the ACME invoice of 5000 EUR to {IBAN}"}]


@contextlib.contextmanager
def _gateway(tmp_path: Path, upstream: Any, redis_url: str, key_prefix: str, restored: bool) -> Iterator[Any]:
    settings = approvals_settings(
        tmp_path, upstream.base_url, backend="redis", redis_url=redis_url, key_prefix=key_prefix, hold_s=20
    )
    settings.redaction.enabled = True
    if restored:  # the operator chose to give the caller its IBAN back inside tool calls
        settings.redaction.actions = {
            **settings.redaction.actions,
            "IBAN_CODE": DirectionalAction(prompt=Action.RESTORE, tool_arguments=True),
        }
    settings.audit.enabled = True
    keys = yaml.safe_load((settings.policies_dir / "keys.yaml").read_text()) or default_keys()
    keys["admin_keys"].append(
        {
            "id": "support",
            "sha256": _sha(SUPPORT_KEY),
            "user": "sam",
            "roles": ["approver"],
            "groups": ["support"],
        }
    )
    (settings.policies_dir / "keys.yaml").write_text(yaml.safe_dump(keys))
    with running_gateway(settings) as gw:
        yield gw
    client = redis_sync.Redis.from_url(redis_url)
    stale = list(client.scan_iter(match="{" + key_prefix + ":apr}:*", count=500))
    if stale:
        client.delete(*stale)
    client.close()


def _admin(gw: Any, path: str, key: str) -> dict[str, Any]:
    return httpx.get(gw.url + path, headers={"authorization": f"Bearer {key}"}, timeout=10).json()


def _pending(gw: Any) -> str:
    data = wait_until(
        lambda: _admin(gw, "/admin/approvals?status=pending", APPROVER_KEY)["data"],
        message="no approval became pending",
    )
    return data[0]["id"]


def _to(doc: dict[str, Any]) -> Any:
    args = doc["tool_calls"][0]["arguments"]
    return (args if isinstance(args, dict) else orjson.loads(args))["to"]


@pytest.mark.parametrize(("stream", "restored"), [(False, False), (True, False), (False, True), (True, True)])
def test_only_reviewers_of_the_group_see_the_real_iban(
    tmp_path: Path, upstream: Any, redis_url: str, key_prefix: str, stream: bool, restored: bool
) -> None:
    with _gateway(tmp_path, upstream, redis_url, key_prefix, restored) as gw:
        _check(gw, upstream, redis_url, key_prefix, stream, restored)


def _check(gw: Any, upstream: Any, redis_url: str, key_prefix: str, stream: bool, restored: bool) -> None:
    upstream.script_tool_call("transfer_funds", {"amount": 5000, "to": PLACEHOLDER}, times=1)
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, timeout=30, max_retries=0)

    def call() -> str:
        if not stream:
            answer = client.chat.completions.create(model="gpt-test", messages=MESSAGES, tools=TOOLS)
            return answer.choices[0].message.tool_calls[0].function.arguments
        args = ""
        for chunk in client.chat.completions.create(
            model="gpt-test", messages=MESSAGES, tools=TOOLS, stream=True
        ):
            for choice in chunk.choices:
                for tc in choice.delta.tool_calls or []:
                    args += (tc.function.arguments or "") if tc.function else ""
        return args

    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(call)
        approval_id = _pending(gw)
        assert (
            PLACEHOLDER in upstream.requests[-1].body.decode()
            and IBAN not in upstream.requests[-1].body.decode()
        )

        finance = _admin(gw, f"/admin/approvals/{approval_id}", APPROVER_KEY)
        assert finance["values"] == "real" and _to(finance) == IBAN
        admin = _admin(gw, f"/admin/approvals/{approval_id}", ADMIN_KEY)  # groups finance + support
        assert admin["values"] == "real" and _to(admin) == IBAN
        for key in (SUPPORT_KEY, AUDITOR_KEY):
            other = _admin(gw, f"/admin/approvals/{approval_id}", key)
            assert other["values"] == "placeholders" and _to(other) == PLACEHOLDER, key
        listed = _admin(gw, "/admin/approvals", APPROVER_KEY)["data"][0]
        assert _to(listed) == PLACEHOLDER and "values" not in listed

        env = {"WARDGATE_URL": gw.url, "COLUMNS": "300"}
        shown = CliRunner().invoke(
            cli_app, ["show", approval_id], env={**env, "WARDGATE_ADMIN_KEY": APPROVER_KEY}
        )
        assert shown.exit_code == 0 and IBAN in shown.output and "real" in shown.output
        hidden = CliRunner().invoke(
            cli_app, ["show", approval_id], env={**env, "WARDGATE_ADMIN_KEY": SUPPORT_KEY}
        )
        assert hidden.exit_code == 0 and IBAN not in hidden.output and PLACEHOLDER in hidden.output

        approved = httpx.post(
            f"{gw.url}/admin/approvals/{approval_id}/approve",
            timeout=10,
            headers={"authorization": f"Bearer {APPROVER_KEY}"},
        ).json()
        assert _to(approved) == PLACEHOLDER
        args = orjson.loads(future.result(10))
    assert args == {"amount": 5000, "to": IBAN if restored else PLACEHOLDER}, "the answer as approved"

    # At rest: the record and the change messages hold the placeholder; the real value is sealed.
    r = redis_sync.Redis.from_url(redis_url)
    try:
        for key in r.scan_iter(match="{" + key_prefix + ":apr}:*", count=500):
            if r.type(key) == b"hash":
                for field, value in r.hgetall(key).items():
                    assert IBAN.encode() not in value, (key, field)
    finally:
        r.close()
    events = _admin(gw, "/admin/audit?limit=100", ADMIN_KEY)["data"]
    assert events and IBAN not in orjson.dumps(events).decode()
    audit_db = Path(gw.app.state.ctx.settings.data_dir) / "audit.db"
    if audit_db.exists():
        assert IBAN.encode() not in audit_db.read_bytes()
    assert IBAN not in httpx.get(gw.url + "/metrics", timeout=10).text


async def test_without_redacted_values_nothing_is_sealed_or_revealed(make_service) -> None:
    service = await make_service("memory")
    approval = await new_approval(service)
    assert not approval.has_values and await service.real_tool_calls(approval) is None
