"""Fixtures of the redaction tests: one warmed-up engine per session (building it costs ~0.2 s)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.call import Call, Endpoint
from gateway.redaction.component import build
from gateway.redaction.config import RedactionSettings
from gateway.redaction.redactor import Redactor
from gateway.redaction.stage import RedactInStage, RedactOutStage
from tests.harness import PASS_THROUGH, RunningGateway, gateway_settings, running_gateway

CORPUS = Path(__file__).resolve().parent.parent / "data" / "redaction_corpus.jsonl"


def load_corpus() -> list[dict[str, Any]]:
    return [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="session")
def corpus() -> list[dict[str, Any]]:
    return load_corpus()


@pytest.fixture(scope="session")
def redactor() -> Redactor:
    return build(RedactionSettings(hash_salt="test-salt-0123456789"))


@pytest.fixture(scope="session")
def stages(redactor: Redactor) -> tuple[RedactInStage, RedactOutStage]:
    return RedactInStage(redactor), RedactOutStage(redactor)


def chat_call(messages: list[dict[str, Any]], *, stream: bool = False, **body: Any) -> Call:
    return Call("req-test", Endpoint.CHAT, {"model": "m", "messages": messages, **body}, {}, stream=stream)


@pytest.fixture(scope="module")
def gw(
    fake_upstream: Any, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RunningGateway]:
    """A gateway with redaction on and every other guard off, one per test module (a module
    that needs other settings defines its own ``gw``)."""
    root = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    settings = gateway_settings(
        root, fake_upstream.base_url, **{**PASS_THROUGH, "redaction": {"enabled": True}}
    )
    with running_gateway(settings) as running:
        yield running
