"""The cache's scope as a team's policy sets it, through the real gateway and the openai SDK:
``global`` shares an answer across teams (and only between global teams), ``key`` shares
nothing between two keys of one team. (The default, ``team``: tests/cache/test_cache_hits.py.)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import openai
import pytest
import yaml

from gateway.http.launch import ServedApp
from tests.cache.conftest import SECOND_KEY, cache_settings, serve_with_clock
from tests.harness import OTHER_TEAM_KEY, TEST_KEY, _sha
from tests.waiting import FakeClock

#: A key of a third team, ``public``, whose policy shares answers globally like ``other``.
PUBLIC_KEY = "wg-test-public-team-000000000000000000"


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, fake_upstream: Any) -> Iterator[ServedApp]:
    """Team ``test``: scope ``key``; teams ``other`` and ``public``: scope ``global``."""
    root = tmp_path_factory.mktemp("scopes")
    settings = cache_settings(root, fake_upstream.base_url, approvals={"enabled": False})
    keys_path = settings.policies_dir / "keys.yaml"
    keys = yaml.safe_load(keys_path.read_text())
    keys["keys"].append(
        {"id": "public", "sha256": _sha(PUBLIC_KEY), "team": "public", "user": "pub", "models": ["*"]}
    )
    keys_path.write_text(yaml.safe_dump(keys))
    path = settings.policies_dir / "policy.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["teams"]["test"] = {"models": ["*"], "cache": {"scope": "key"}}
    for team in ("other", "public"):
        doc["teams"][team] = {"models": ["*"], "cache": {"scope": "global"}}
    path.write_text(yaml.safe_dump(doc))
    with serve_with_clock(settings, FakeClock()) as served:
        yield served


def _chat(gw: ServedApp, key: str, content: str) -> tuple[str, str]:
    client = openai.OpenAI(base_url=gw.base_url, api_key=key, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model="gpt-test", messages=[{"role": "user", "content": content}], temperature=0
    )
    return raw.headers["x-wardgate-cache"], str(raw.parse().choices[0].message.content)


def _sent(upstream: Any) -> int:
    return len([r for r in upstream.requests if r.path.endswith("/chat/completions")])


def test_global_scope_shares_an_answer_across_teams_and_only_global_ones(
    gateway: ServedApp, upstream: Any
) -> None:
    content = f"What is the public holiday calendar {uuid.uuid4().hex}?"
    status, answer = _chat(gateway, OTHER_TEAM_KEY, content)
    assert status == "miss"
    assert _chat(gateway, PUBLIC_KEY, content) == ("hit", answer)  # another team, the same answer
    assert _sent(upstream) == 1
    assert _chat(gateway, TEST_KEY, content)[0] == "miss"  # a key-scoped team sees no global entry
    assert _sent(upstream) == 2


def test_key_scope_shares_nothing_between_two_keys_of_one_team(gateway: ServedApp, upstream: Any) -> None:
    content = f"Plan the next step {uuid.uuid4().hex}"
    assert _chat(gateway, TEST_KEY, content)[0] == "miss"
    assert _chat(gateway, SECOND_KEY, content)[0] == "miss"  # same team, another key
    assert _chat(gateway, TEST_KEY, content)[0] == "hit"
    assert _chat(gateway, SECOND_KEY, content)[0] == "hit"  # its own entry
    assert _sent(upstream) == 2
