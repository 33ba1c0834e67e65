"""A policy decision's `redact` changes what leaves the gateway (redaction ran before policy)."""

from __future__ import annotations

import openai
import pytest
import yaml

from tests.harness import OTHER_TEAM_KEY, PASS_THROUGH, TEST_KEY, gateway_settings, running_gateway


@pytest.fixture(scope="module")
def gw(fake_upstream, tmp_path_factory):
    root = tmp_path_factory.mktemp("policy-redact")
    settings = gateway_settings(
        root,
        fake_upstream.base_url,
        **{**PASS_THROUGH, "policy": {"enabled": True, "watch": False}, "redaction": {"enabled": True}},
    )
    path = root / "policies" / "policy.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["teams"]["test"] = {"redact": {"EMAIL_ADDRESS": "mask"}}
    doc["teams"]["other"] = {"redact": {"EMAIL_ADDRESS": "block"}}
    path.write_text(yaml.safe_dump(doc))
    with running_gateway(settings) as running:
        yield running


def test_policy_redact_action_replaces_the_default_action_before_forwarding(gw, upstream):
    client = openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)
    client.chat.completions.create(
        model="gpt-test", messages=[{"role": "user", "content": "mail bob@example.com"}]
    )
    sent = upstream.requests[-1].body.decode()
    assert "bob@example.com" not in sent
    assert "<EMAIL_ADDRESS_1>" not in sent, "the policy asked for mask, not the default placeholder"


def test_policy_block_action_refuses_the_request_without_calling_upstream(gw, upstream):
    client = openai.OpenAI(base_url=gw.base_url, api_key=OTHER_TEAM_KEY, max_retries=0)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-test", messages=[{"role": "user", "content": "mail bob@example.com"}]
        )
    assert info.value.code == "sensitive_data_blocked"
    assert "bob@example.com" not in str(info.value)
    assert upstream.requests == []
