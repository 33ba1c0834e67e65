"""A URL's authority is scanned like prose (an address spanning userinfo and host, an IP host, a
key as a subdomain, a URL password), and the ``pii`` summary names the action of each type on
each side (what a policy and the audit record read)."""

from __future__ import annotations

import pytest

from gateway.call import Call, Endpoint, ModelResponse
from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings
from gateway.redaction.jsonview import url_view
from gateway.redaction.redactor import Redactor
from gateway.redaction.stage import RedactInStage, RedactOutStage

KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"


@pytest.fixture(scope="module")
def directed() -> Redactor:
    actions = {
        **RedactionSettings().actions,
        "EMAIL_ADDRESS": {"prompt": "restore", "answer": "allow"},
    }
    return build(RedactionSettings(hash_salt="test-salt-0123456789", actions=actions))


def _image(url: str) -> dict[str, object]:
    return {"type": "image_url", "image_url": {"url": url}}


@pytest.mark.parametrize(
    ("url", "value", "entity"),
    [
        ("https://jane.doe@example.com/inbox", "jane.doe@example.com", "EMAIL_ADDRESS"),
        ("http://10.20.30.40:8080/admin/x.png", "10.20.30.40", "IP_ADDRESS"),
        (f"https://{KEY}.hooks.example.com/p.png", KEY, "OPENAI_API_KEY"),
        ("postgres://admin:S3cr3tPw9@db.example.com/app", "S3cr3tPw9", "PASSWORD"),
        ("https://jane.doe%40example.com:x@img.example.com/p.png", "jane.doe%40example.com", "EMAIL_ADDRESS"),
    ],
)
async def test_a_value_in_a_url_authority_does_not_reach_the_provider(
    stages: tuple[RedactInStage, RedactOutStage], url: str, value: str, entity: str
) -> None:
    redact_in, _ = stages
    call = Call(
        "r", Endpoint.CHAT, {"model": "m", "messages": [{"role": "user", "content": [_image(url)]}]}, {}
    )
    await redact_in.on_request(call)
    sent = call.body["messages"][0]["content"][0]["image_url"]["url"]
    assert value not in sent and f"<{entity}_" in sent, sent
    assert call.pii["entities"].get(entity, 0) >= 1


async def test_an_ordinary_host_and_path_are_left_alone(stages: tuple[RedactInStage, RedactOutStage]) -> None:
    redact_in, _ = stages
    url = "https://img.example.com:8443/a/b.png?size=1024&v=3#top"
    call = Call(
        "r", Endpoint.CHAT, {"model": "m", "messages": [{"role": "user", "content": [_image(url)]}]}, {}
    )
    await redact_in.on_request(call)
    assert call.body["messages"][0]["content"][0]["image_url"]["url"] == url
    assert call.pii["entities"] == {}


def test_the_url_view_keeps_offsets_and_the_authority() -> None:
    for url in (
        "https://u:p@h.example.com:1/x?y=1#z",
        "mailto:a@b.co",
        "not a url",
        "//h/x",
        "http://[::1]:80/",
    ):
        view = url_view(url)
        assert len(view) == len(url)
    assert url_view("https://u:p@h.example.com:1/x?y=1").startswith("https://u:p@h.example.com:1 ")


async def test_the_pii_summary_names_each_sides_action(directed: Redactor) -> None:
    redact_in, redact_out = RedactInStage(directed), RedactOutStage(directed)
    body = {"model": "m", "messages": [{"role": "user", "content": f"I am jane@example.com, key {KEY}"}]}
    call = Call("r", Endpoint.CHAT, body, {})
    await redact_in.on_request(call)
    pii = call.pii
    assert pii["actions"] == {"EMAIL_ADDRESS": "restore", "OPENAI_API_KEY": "redact"}
    assert pii["answer_actions"] == {"EMAIL_ADDRESS": "allow", "OPENAI_API_KEY": "redact"}

    answer = {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": f"write to help@corp.example.com, not {KEY}"},
            }
        ],
    }
    response = ModelResponse(200, {}, json=answer)
    await redact_out.on_response(call, response)
    out = call.pii["response"]
    assert out["entities"] == {"EMAIL_ADDRESS": 1, "OPENAI_API_KEY": 1}
    assert out["actions"] == {"EMAIL_ADDRESS": "allow", "OPENAI_API_KEY": "redact"}
    content = response.json["choices"][0]["message"]["content"]
    assert "help@corp.example.com" in content and KEY not in content
    reasons = next(d for d in call.decisions if d.stage == "redact_out").reasons
    assert "left 1 EMAIL_ADDRESS in the answer" in reasons
    assert "redacted 1 OPENAI_API_KEY in the answer" in reasons
