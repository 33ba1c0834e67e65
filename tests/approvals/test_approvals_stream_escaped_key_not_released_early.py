"""No tool-call byte reaches the client before the approval decision, however the key is spelled.

A chunk carrying text and a tool call whose keys are JSON-escaped (``"tool\\u005fcalls"``,
``"ind\\u0065x"``) is one tool call to every JSON parser; only a byte-level shortcut would
mistake it for plain text and release it while the approval is pending. Driven through the
real gateway (real policies, Redis queue) with a client reading the raw bytes as they come.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import orjson

from tests.approvals.e2e_app import approvals_settings
from tests.harness import APPROVER_KEY, TEST_KEY, running_gateway
from tests.waiting import wait_until

HEAD = b'{"id":"chatcmpl-x","object":"chat.completion.chunk","created":1,"model":"gpt-test","choices":'
ROLE = b"data: " + HEAD + b'[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
SNEAKY = (
    b"data: " + HEAD + b'[{"index":0,"delta":{"content":"Paying now.","tool\\u005fcalls":[{"ind\\u0065x":0,'
    b'"id":"call_1","type":"function","function":{"name":"transfer_funds",'
    b'"arguments":"{\\"amount\\":5000,\\"to\\":\\"acct-666\\"}"}}]},"finish_reason":null}]}\n\n'
)
FINISH = b"data: " + HEAD + b'[{"index":0,"delta":{},"finish_reason":"tool_calls"}]}\n\n'


def test_an_escaped_tool_calls_key_is_held_until_the_reviewer_decides(
    tmp_path: Path, upstream: Any, redis_url: str, key_prefix: str
) -> None:
    settings = approvals_settings(
        tmp_path, upstream.base_url, backend="redis", redis_url=redis_url, key_prefix=key_prefix, hold_s=20
    )
    assert orjson.loads(SNEAKY[6:])["choices"][0]["delta"]["tool_calls"][0]["index"] == 0  # what parsers see
    upstream.script_answer(events=[ROLE, SNEAKY, FINISH])
    received: list[bytes] = []
    with running_gateway(settings) as gw:

        def read() -> None:
            with httpx.stream(
                "POST",
                gw.base_url + "/chat/completions",
                timeout=30,
                headers={"authorization": f"Bearer {TEST_KEY}"},
                json={
                    "model": "gpt-test",
                    "stream": True,
                    "messages": [{"role": "user", "content": "pay acct-666"}],
                },
            ) as resp:
                for chunk in resp.iter_raw():
                    received.append(chunk)

        reader = threading.Thread(target=read)
        reader.start()
        admin = {"authorization": f"Bearer {APPROVER_KEY}"}
        pending = wait_until(
            lambda: httpx.get(gw.url + "/admin/approvals?status=pending", headers=admin).json()["data"],
            message="the tool call must be held for a reviewer",
        )
        assert pending[0]["tool_calls"][0]["name"] == "transfer_funds"
        time.sleep(0.2)  # whatever the gateway would release early has had time to arrive
        early = b"".join(received)
        assert b"transfer_funds" not in early and b"acct-666" not in early and b"tool" not in early
        httpx.post(f"{gw.url}/admin/approvals/{pending[0]['id']}/deny", headers=admin, json={"comment": "no"})
        reader.join(10)
    body = b"".join(received)
    assert b"Action transfer_funds was denied by a reviewer: no" in body
    assert b"acct-666" not in body and b"tool_calls" not in body and b"tool\\u005fcalls" not in body
