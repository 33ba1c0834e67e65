"""The reviewer CLI prints model-controlled text literally: no rich markup, no raw control bytes.

A hostile model chooses a held tool call's name and arguments; a reviewer's terminal must show
exactly what would run. Drives ``wardgate approvals list|show`` against the admin API over HTTP.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from typer.testing import CliRunner

from gateway.approvals.cli import app as cli_app
from gateway.approvals.cli import safe
from gateway.approvals.fingerprint import fingerprint
from gateway.approvals.spec import ApprovalSpec
from tests.approvals import test_approvals_api
from tests.approvals.conftest import chat_call
from tests.approvals.test_approvals_api import FIN_KEY, Api

api = test_approvals_api.api  # the admin API on a real port, as a fixture of this module

HIDDEN = "[conceal]acct-666[/conceal]ACME"
HOSTILE_ARGS = {
    "amount": 5000,
    "to": HIDDEN,
    "memo": "[/]",
    "colour": "\x1b[8mhidden\x1b[0m visible",
    "bidi": "\u202eEMCA\u202c",
    "zero_width": "AC\u200bME",
    "bell": "\x07ding\r\noverwrite",
    "emoji": ":warning: :smile:",
}


async def _hostile(api: Api, name: str = "transfer_funds[bold]") -> str:
    spec = ApprovalSpec(
        mode="defer",
        ttl_s=60,
        hold_s=1,
        approvals_required=1,
        groups=["finance"],
        reasons=["[red]reason[/red] \x1b[2J"],
        tool_calls=[{"id": "call_[x]", "name": name, "arguments": HOSTILE_ARGS}],
    )
    call = chat_call()
    approval = await api.service.create(call, "response", spec, fingerprint(call), None)
    return approval.id


def _run(api: Api, *args: str) -> Any:
    env = {"WARDGATE_URL": api.url, "WARDGATE_ADMIN_KEY": FIN_KEY, "COLUMNS": "400"}
    return CliRunner().invoke(cli_app, list(args), env=env)


def test_safe_escapes_every_character_a_terminal_would_act_on() -> None:
    assert safe("plain ACME 5000 é ü 漢") == "plain ACME 5000 é ü 漢"
    assert safe("\x1b[31mred") == "\\x1b[31mred"
    assert safe("a\u202eb\u200bc\u2028d\r\ne\x00") == "a\\u202eb\\u200bc\\u2028d\\x0d\\x0ae\\x00"
    assert safe("\ud800") == "\\ud800"
    assert safe("[/]") == "[/]"


async def test_show_prints_markup_and_control_characters_literally(api: Api) -> None:
    approval_id = await _hostile(api)
    shown = await asyncio.to_thread(_run, api, "show", approval_id)
    assert shown.exit_code == 0, shown.output
    out = shown.output
    assert HIDDEN in out, "the concealed account must be visible"
    assert '"memo": "[/]"' in out
    assert "transfer_funds[bold]" in out and "call_[x]" in out
    assert "[red]reason[/red] \\x1b[2J" in out
    # Arguments are shown as JSON, whose escapes already spell out C0 controls.
    assert "\\u001b[8mhidden\\u001b[0m visible" in out
    assert "\\u202eEMCA\\u202c" in out and "AC\\u200bME" in out
    assert "\\u0007ding\\r\\noverwrite" in out
    assert ":warning: :smile:" in out
    for raw in ("\x1b", "\u202e", "\u200b", "\x07", "\r"):
        assert raw not in out


async def test_show_prints_long_arguments_whole(api: Api) -> None:
    approval_id = await _hostile(api)
    padded = {"note": "x" * 300, "to": "DE89 3704 0044 0532 0130 00"}
    await api.service.store.update(approval_id, lambda a: _with_args(a, padded))
    shown = await asyncio.to_thread(_run, api, "show", approval_id)
    assert shown.exit_code == 0, shown.output
    assert "DE89 3704 0044 0532 0130 00" in shown.output


def _with_args(approval: Any, args: dict[str, Any]) -> Any:
    from gateway.approvals.model import Approval

    new = Approval.from_dict(approval.to_dict())
    new.tool_calls = [{"id": "call_1", "name": "transfer_funds", "arguments": args}]
    return new


@pytest.mark.parametrize("command", ["list", "show"])
async def test_list_and_show_never_interpret_markup_in_names(api: Api, command: str) -> None:
    approval_id = await _hostile(api, name="[/][link=http://evil]pay[/link]\x1b]8;;http://evil\x07")
    args = ["list"] if command == "list" else ["show", approval_id]
    result = await asyncio.to_thread(_run, api, *args)
    assert result.exit_code == 0, result.output
    assert "[/][link=http://evil]pay[/link]\\x1b]8;;http://evil\\x07" in result.output
    assert "\x1b" not in result.output


async def test_error_messages_from_the_server_are_printed_literally(api: Api) -> None:
    result = await asyncio.to_thread(_run, api, "show", "apr_[bold]\x1b[31m")
    assert result.exit_code == 1
    assert "\x1b" not in result.output
