"""A gateway for console tests: the real policies, approvals and audit, keys for every role.

Shared by the console's test files (and by bench/console.py): ``console_settings`` builds the
settings, ``Browserless`` signs in over plain HTTP (httpx) for the tests that need no browser.
The keys: ``ADMIN_KEY`` (admin, groups finance and support), ``APPROVER_KEY`` ("reviewer",
finance), ``APPROVER2_KEY`` ("second-reviewer", finance; four-eyes needs two),
``AUDITOR_KEY``, ``SUPPORT_KEY`` (approver of another group only) and ``SELF_APPROVER_KEY``
(an approver held by "tester", who also holds the agent key ``TEST_KEY``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import yaml

from gateway.settings import Settings
from tests.approvals.e2e_app import SELF_APPROVER_KEY, TRANSFER_TOOLS
from tests.harness import ADMIN_KEY, APPROVER_KEY, AUDITOR_KEY, _sha, default_keys, gateway_settings

APPROVER2_KEY = "wg-approver2-test-00000000000000000000"
SUPPORT_KEY = "wg-support-test-0000000000000000000000"
SUPPORT2_KEY = "wg-support2-test-000000000000000000000"
ROLE_KEYS = {"admin": ADMIN_KEY, "approver": APPROVER_KEY, "auditor": AUDITOR_KEY}


def console_keys() -> dict[str, Any]:
    keys = default_keys()
    keys["admin_keys"] += [
        {
            "id": "approver2",
            "sha256": _sha(APPROVER2_KEY),
            "user": "second-reviewer",
            "roles": ["approver"],
            "groups": ["finance"],
        },
        {
            "id": "support",
            "sha256": _sha(SUPPORT_KEY),
            "user": "support-lead",
            "roles": ["approver"],
            "groups": ["support-leads"],
        },
        {
            "id": "support2",
            "sha256": _sha(SUPPORT2_KEY),
            "user": "second-support-lead",
            "roles": ["approver"],
            "groups": ["support-leads"],
        },
        {
            "id": "self-approver",
            "sha256": _sha(SELF_APPROVER_KEY),
            "user": "tester",
            "roles": ["approver"],
            "groups": ["finance"],
        },
    ]
    return keys


def console_settings(root: Path, upstream_url: str, **overrides: Any) -> Settings:
    """Policies, approvals (memory unless overridden), audit (SQLite unless overridden), console;
    limits and redaction off (the console tests look at approvals and the audit trail)."""
    base: dict[str, Any] = {
        "limits": {"enabled": False},
        "redaction": {"enabled": False},
        # refunds need two support leads (four-eyes with two reviewers); transfers one finance approver
        "approvals": {"hold_s": 60, "groups": {"support-leads": {"approvals_required": 2}}},
    }
    for name, value in overrides.items():
        base[name] = {**base.get(name, {}), **value} if isinstance(value, dict) else value
    settings = gateway_settings(root, upstream_url, **base)
    (settings.policies_dir / "keys.yaml").write_text(yaml.safe_dump(console_keys()))
    return settings


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "no CSRF token on the page"
    return found.group(1)


class Browserless:
    """A signed-in console client over plain HTTP (cookies kept), for tests without a browser."""

    def __init__(self, url: str, key: str | None = None) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, follow_redirects=False, timeout=10)
        self.csrf = ""
        if key is not None:
            self.sign_in(key)

    def sign_in(self, key: str) -> httpx.Response:
        form = self.http.get("/console/login")
        token = csrf_of(form.text)
        done = self.http.post(
            "/console/login",
            data={"key": key, "csrf_token": token, "next": "/console/"},
            headers={"origin": self.url},
        )
        if done.status_code == 303:
            self.csrf = csrf_of(self.http.get("/console/").text)
        return done

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.http.get(path, **kw)

    def post(self, path: str, data: dict[str, str] | None = None, csrf: str | None = None) -> httpx.Response:
        body = {"csrf_token": self.csrf if csrf is None else csrf, **(data or {})}
        return self.http.post(path, data=body, headers={"origin": self.url})

    def close(self) -> None:
        self.http.close()


def agent_client(url: str) -> Any:
    import openai

    from tests.harness import TEST_KEY

    return openai.OpenAI(base_url=url + "/v1", api_key=TEST_KEY, timeout=60, max_retries=0)


def transfer(
    url: str,
    args: dict[str, Any],
    *,
    agent: str = "agent-7",
    run: str = "run-1",
    tool: str = "transfer_funds",
) -> Any:
    """The agent's openai SDK call that the real response policy holds for approval (a
    ``transfer_funds`` above 1000: one finance approver; an ``issue_refund`` above 200: two
    support leads). Script the fake upstream with the tool call first; returns the completion."""
    tools = [{"type": "function", "function": {**TRANSFER_TOOLS[0]["function"], "name": tool}}]
    return agent_client(url).chat.completions.create(
        model="gpt-test",
        messages=[{"role": "user", "content": "Pay the ACME invoice"}],
        tools=tools,
        extra_headers={"X-Agent-Id": agent, "X-Run-Id": run},
    )


def pending_ids(url: str) -> list[str]:
    from tests.harness import ADMIN_KEY

    r = httpx.get(
        url + "/admin/approvals?status=pending", headers={"authorization": f"Bearer {ADMIN_KEY}"}, timeout=10
    )
    return [a["id"] for a in r.json()["data"]]
