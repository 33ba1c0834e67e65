"""Which stream events are checked for repeated keys, and why that is every event the gateway
decides anything on (``gateway/dupkeys.py``, "Stream events").

- With a guard that reads streams, every event is checked: the policy and approval stages
  parse each one; redaction parses each one except the content-only chunks its fast path
  recognises byte for byte (``redaction/chat_splice.py``), whose fixed, distinct keys cannot
  repeat. An event that repeats a key does not match that pattern, so it is parsed, and refused.
- With no guard (pass-through), an event is read only for usage and for a provider error,
  and checked when read; the others are forwarded byte for byte, unread: nothing is decided
  on them, so there is no guard whose reading could differ from the client's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.harness import PASS_THROUGH, TEST_KEY, RunningGateway, gateway_settings, running_gateway

BODY = {"model": "gpt-test", "messages": [{"role": "user", "content": "hello"}], "stream": True}


def _gateway(tmp_path_factory: pytest.TempPathFactory, upstream_url: str, **sections: Any) -> Any:
    root = tmp_path_factory.mktemp("dupkeys-streams")
    return running_gateway(gateway_settings(root, upstream_url, **{**PASS_THROUGH, **sections}))


@pytest.fixture(scope="module")
def redacting(fake_upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with _gateway(tmp_path_factory, fake_upstream.base_url, redaction={"enabled": True}) as gw:
        yield gw


@pytest.fixture(scope="module")
def passing(fake_upstream: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    with _gateway(tmp_path_factory, fake_upstream.base_url) as gw:
        yield gw


def _events(gw: RunningGateway) -> list[str]:
    resp = httpx.post(
        gw.base_url + "/chat/completions",
        json=BODY,
        headers={"authorization": f"Bearer {TEST_KEY}"},
        timeout=10,
    )
    assert resp.status_code == 200, resp.text
    return [e for e in resp.text.split("\n\n") if e.strip()]


def test_with_redaction_alone_a_content_chunk_repeating_a_key_is_refused(
    redacting: RunningGateway, upstream: Any
) -> None:
    """Redaction's fast path rewrites content chunks without parsing them; a chunk that
    repeats a key is not one it recognises, so it is parsed, checked and refused."""
    upstream.fault("duplicate_keys", at=2, key="object", chunk_delay_s=0.01)
    events = _events(redacting)
    error = orjson.loads(events[-1].removeprefix("data: "))["error"]
    assert error["code"] == "upstream_error" and "duplicate key" in error["message"]
    assert not any('"duplicate"' in e for e in events)


def test_with_no_guard_an_unread_event_is_forwarded_as_it_came(
    passing: RunningGateway, upstream: Any
) -> None:
    """Pass-through decides nothing on a content chunk: it is relayed byte for byte, repeated
    key included (the client's parser is the only reader). The usage chunk, which the gateway
    does read, is refused instead (test_core_duplicate_keys)."""
    upstream.fault("duplicate_keys", at=2, key="object", chunk_delay_s=0.01)
    events = _events(passing)
    assert events[2].startswith('data: {"object":"duplicate",')
    assert events[-1] == "data: [DONE]"
