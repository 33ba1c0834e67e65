"""A failed call's audit event says what was tried: every attempt's deployment, upstream status
and error code, the last status, the retries, and the call's error code; for non-stream and
stream calls, retries on one deployment and fallbacks to another. Read back through the audit
query API, with fake upstreams failing on demand.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
import yaml

from tests.fake_openai import FakeOpenAI
from tests.harness import (
    AUDITOR_KEY,
    PASS_THROUGH,
    TEST_KEY,
    RunningGateway,
    gateway_settings,
    running_gateway,
)

MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def broken() -> Iterator[FakeOpenAI]:
    """A second upstream, so that one model can fall back from it to the session's fake."""
    with FakeOpenAI() as fake:
        yield fake


@pytest.fixture
def east(broken: FakeOpenAI) -> FakeOpenAI:
    broken.reset()
    return broken


@pytest.fixture(scope="module")
def gw(
    fake_upstream: Any, broken: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningGateway]:
    root = tmp_path_factory.mktemp("audit-failed")
    settings = gateway_settings(
        root,
        fake_upstream.base_url,
        **{**PASS_THROUGH, "audit": {"enabled": True}},
        providers={"max_attempts": 3, "backoff_base_s": 0.001, "circuit_failures": 1000},
    )
    dep = {"provider": "openai", "api_key_env": "WARDGATE_TEST_PROVIDER_KEY"}
    models = {
        "models": {
            "gpt-test": {"deployments": [{**dep, "name": "primary", "base_url": fake_upstream.base_url}]},
            # "east" is tried first (weight), "west" is the fallback.
            "gpt-fallback": {
                "deployments": [
                    {**dep, "name": "east", "base_url": broken.base_url, "weight": 1e9},
                    {**dep, "name": "west", "base_url": fake_upstream.base_url},
                ]
            },
            "gpt-dead": {"deployments": [{**dep, "name": "dead", "base_url": "http://127.0.0.1:9/v1"}]},
        }
    }
    (settings.policies_dir / "models.yaml").write_text(yaml.safe_dump(models))
    with running_gateway(settings) as running:
        yield running


def _client(gw: RunningGateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gw.base_url, api_key=TEST_KEY, max_retries=0)


def _call(gw: RunningGateway, model: str, *, stream: bool = False) -> tuple[int, str]:
    """Make one call; return (HTTP status, request id)."""
    client = _client(gw)
    try:
        if stream:
            with client.chat.completions.with_streaming_response.create(
                model=model, messages=MESSAGES, stream=True
            ) as resp:
                for _ in resp.iter_lines():
                    pass
                return resp.status_code, resp.headers["x-request-id"]
        raw = client.chat.completions.with_raw_response.create(model=model, messages=MESSAGES)
        return raw.status_code, raw.headers["x-request-id"]
    except openai.APIStatusError as exc:
        return exc.status_code, exc.response.headers["x-request-id"]


def _event(gw: RunningGateway, request_id: str) -> dict[str, Any]:
    r = httpx.get(
        f"{gw.url}/admin/audit",
        params={"request_id": request_id},
        headers={"authorization": f"Bearer {AUDITOR_KEY}"},
    )
    assert r.status_code == 200, r.text
    [event] = r.json()["data"]
    return event


def _tried(*attempts: tuple[str, int | None, str | None]) -> list[dict[str, Any]]:
    return [{"deployment": d, "status": s, "error": e} for d, s, e in attempts]


@pytest.mark.parametrize("stream", [False, True])
def test_retries_exhausted_on_one_deployment_record_every_attempt(
    gw: RunningGateway, upstream: Any, stream: bool
) -> None:
    upstream.fault("status", status=503)
    status, rid = _call(gw, "gpt-test", stream=stream)
    ev = _event(gw, rid)
    assert status == 502 and ev["status"] == 502 and ev["decision"] == "error"
    assert ev["error"]["code"] == "upstream_error"
    assert ev["upstream"] == {
        "status": 503,
        "retries": 2,
        "attempts": 3,
        "tried": _tried(*[("primary", 503, "upstream_error")] * 3),
    }
    assert ev["model"]["deployment"] == "primary"


@pytest.mark.parametrize("stream", [False, True])
def test_a_retry_that_succeeds_records_the_failed_attempt_too(
    gw: RunningGateway, upstream: Any, stream: bool
) -> None:
    upstream.fault("status", times=1, status=500)
    status, rid = _call(gw, "gpt-test", stream=stream)
    ev = _event(gw, rid)
    assert status == 200 and ev["error"] is None
    assert ev["upstream"] == {
        "status": 200,
        "retries": 1,
        "attempts": 2,
        "tried": _tried(("primary", 500, "upstream_error"), ("primary", 200, None)),
    }


@pytest.mark.parametrize("stream", [False, True])
def test_fallback_to_another_deployment_records_both(
    gw: RunningGateway, upstream: Any, east: FakeOpenAI, stream: bool
) -> None:
    east.fault("status", status=502)
    status, rid = _call(gw, "gpt-fallback", stream=stream)
    ev = _event(gw, rid)
    assert status == 200
    assert ev["model"]["deployment"] == "west"
    assert ev["upstream"]["tried"] == _tried(("east", 502, "upstream_error"), ("west", 200, None))
    assert (ev["upstream"]["status"], ev["upstream"]["attempts"], ev["upstream"]["retries"]) == (200, 2, 1)


def test_every_deployment_failing_records_each_ones_own_failure(
    gw: RunningGateway, upstream: Any, east: FakeOpenAI
) -> None:
    """east 503 (retryable, tried again), west 429 (excluded after one try)."""
    east.fault("status", status=503)
    upstream.fault("429", retry_after_ms="1")
    status, rid = _call(gw, "gpt-fallback")
    ev = _event(gw, rid)
    assert status == 502 and ev["error"]["code"] == "upstream_error"
    assert ev["upstream"]["tried"] == _tried(
        ("east", 503, "upstream_error"),
        ("west", 429, "upstream_rate_limited"),
        ("east", 503, "upstream_error"),
    )
    assert ev["upstream"]["status"] == 503 and ev["model"]["deployment"] == "east"


def test_provider_auth_failure_is_recorded_with_its_status(gw: RunningGateway, upstream: Any) -> None:
    upstream.fault("status", status=401, echo_auth=True)
    status, rid = _call(gw, "gpt-test")
    ev = _event(gw, rid)
    assert status == 502 and ev["error"]["code"] == "upstream_auth_failed"
    assert ev["upstream"]["tried"] == _tried(("primary", 401, "upstream_auth_failed"))


def test_unreachable_deployment_is_recorded_without_a_status(gw: RunningGateway) -> None:
    status, rid = _call(gw, "gpt-dead")
    ev = _event(gw, rid)
    assert status == 502
    assert ev["upstream"]["status"] is None and ev["model"]["deployment"] == "dead"
    assert ev["upstream"]["tried"] == _tried(*[("dead", None, "upstream_error")] * 3)


def test_stream_broken_mid_way_is_recorded_on_the_deployment_that_broke(
    gw: RunningGateway, upstream: Any
) -> None:
    upstream.fault("cut_stream", after=2, chunk_delay_s=0.01)
    status, rid = _call(gw, "gpt-test", stream=True)
    ev = _event(gw, rid)
    assert status == 200 and ev["error"]["code"] == "upstream_error" and ev["decision"] == "error"
    assert ev["upstream"] == {
        "status": 200,
        "retries": 0,
        "attempts": 1,
        "tried": _tried(("primary", 200, "upstream_error")),
    }


def test_provider_error_event_mid_stream_is_recorded(gw: RunningGateway, upstream: Any) -> None:
    upstream.fault("stream_error", after=2, chunk_delay_s=0.01)
    status, rid = _call(gw, "gpt-test", stream=True)
    ev = _event(gw, rid)
    assert status == 200 and ev["error"]["code"] == "upstream_error"
    assert ev["upstream"]["tried"] == _tried(("primary", 200, "upstream_error"))


def test_csv_export_carries_the_upstream_status_attempts_and_deployments(
    gw: RunningGateway, upstream: Any, east: FakeOpenAI
) -> None:
    east.fault("status", status=503)
    status, rid = _call(gw, "gpt-fallback")
    assert status == 200
    resp = httpx.get(
        f"{gw.url}/admin/audit/export",
        params={"format": "csv"},
        headers={"authorization": f"Bearer {AUDITOR_KEY}"},
    )
    [row] = [r for r in csv.DictReader(io.StringIO(resp.text)) if r["request_id"] == rid]
    assert (row["upstream_status"], row["attempts"], row["deployments_tried"]) == ("200", "2", "east;west")
