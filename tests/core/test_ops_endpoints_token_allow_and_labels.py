"""Operator edges: the operator token on /metrics and /openapi.json, admin operations only under
the admin scheme, ``Allow`` on every 405, and model names that never become labels unless an
authenticated caller named a configured model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from tests.harness import ADMIN_KEY, PASS_THROUGH, TEST_KEY, RunningGateway, gateway_settings, running_gateway
from tests.waiting import wait_until

TOKEN = "ops-token-0123456789abcdef"


@pytest.fixture(scope="module")
def guarded(fake_upstream: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    """Guards off, metrics on with 3 label slots per label, the operator token set."""
    root: Path = tmp_path_factory.mktemp("ops-edges")
    settings = gateway_settings(
        root,
        fake_upstream.base_url,  # type: ignore[attr-defined]
        **{
            **PASS_THROUGH,
            "audit": {"enabled": False},
            "observability": {"metrics": {"max_label_values": 3}},
        },
        server={"metrics_token": TOKEN},
    )
    with running_gateway(settings) as gw:
        yield gw


def _assert_openai_401(resp: httpx.Response) -> None:
    assert resp.status_code == 401, resp.text
    error = resp.json()["error"]
    assert error["type"] == "authentication_error" and error["code"] == "invalid_api_key"
    assert error["param"] is None and "metrics_token" in error["message"]
    assert resp.headers["www-authenticate"] == "Bearer"
    assert TOKEN not in resp.text


@pytest.mark.parametrize("path", ["/metrics", "/openapi.json"])
@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        f"Basic {TOKEN}",
        f"Bearer {TOKEN.upper()}",
        f"Bearer {TOKEN}x",
        f"Bearer {TOKEN[:-1]}",
        f"Bearer {ADMIN_KEY}",
        f"Bearer {TEST_KEY}",
        "Bearer \u200b" + TOKEN,
    ],
)
def test_operator_endpoints_refuse_anything_but_the_exact_token(guarded, path, authorization):
    headers = {} if authorization is None else {"authorization": authorization.encode("utf-8")}
    _assert_openai_401(httpx.get(guarded.url + path, headers=headers))


@pytest.mark.parametrize("path", ["/metrics", "/openapi.json"])
def test_operator_endpoints_answer_with_the_token_any_scheme_case(guarded, path):
    for scheme in ("Bearer", "bearer", "BEARER"):
        resp = httpx.get(guarded.url + path, headers={"authorization": f"{scheme} {TOKEN}"})
        assert resp.status_code == 200, resp.text


def test_without_a_token_configured_the_operator_endpoints_stay_open(gateway):
    assert httpx.get(gateway.url + "/metrics").status_code == 200
    spec = httpx.get(gateway.url + "/openapi.json").json()
    assert "ops" not in spec["components"]["securitySchemes"]
    assert "security" not in spec["paths"]["/metrics"]["get"]


def test_health_probes_never_need_the_token(guarded):
    assert httpx.get(guarded.url + "/healthz").status_code == 200
    assert httpx.get(guarded.url + "/readyz").status_code == 200


def test_openapi_documents_admin_operations_only_under_the_admin_scheme(guarded):
    spec = httpx.get(guarded.url + "/openapi.json", headers={"authorization": f"Bearer {TOKEN}"}).json()
    schemes = spec["components"]["securitySchemes"]
    assert set(schemes) == {"bearer", "admin", "ops"}
    admin_ops = [
        (p, m, op) for p, ops in spec["paths"].items() if p.startswith("/admin/") for m, op in ops.items()
    ]
    assert len(admin_ops) >= 15  # keys, approvals, audit, spend, budgets, limits, policies
    for path, method, op in admin_ops:
        assert op["security"] == [{"admin": []}], (method, path)
        assert {"401", "403"} <= set(op["responses"]), (method, path)
    for path in ("/v1/chat/completions", "/v1/responses", "/v1/embeddings"):
        assert spec["paths"][path]["post"]["security"] == [{"bearer": []}]
    assert spec["paths"]["/v1/approvals/{approval_id}"]["get"]["security"] == [{"bearer": []}]
    for path in ("/metrics", "/openapi.json"):
        op = spec["paths"][path]["get"]
        assert op["security"] == [{"ops": []}] and "401" in op["responses"]
    assert "security" not in spec["paths"]["/healthz"]["get"]


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("GET", "/v1/chat/completions", "POST"),
        ("PUT", "/v1/responses", "POST"),
        ("DELETE", "/v1/embeddings", "POST"),
        ("POST", "/v1/models", "GET, HEAD"),
        ("PATCH", "/v1/models/gpt-test", "GET, HEAD"),
        ("POST", "/healthz", "GET, HEAD"),
        ("OPTIONS", "/readyz", "GET, HEAD"),
        ("POST", "/metrics", "GET, HEAD"),
        ("POST", "/openapi.json", "GET, HEAD"),
        ("PUT", "/admin/keys", "GET, HEAD, POST"),  # two routes serve this path: both are named
        ("POST", "/admin/keys/some-id", "DELETE, GET, HEAD"),
        ("GET", "/admin/budgets/team/t1", "PUT"),
        ("DELETE", "/admin/approvals/stream", "GET, HEAD"),
        ("GET", "/admin/approvals/apr_x/approve", "POST"),
        ("POST", "/v1/approvals/apr_x", "DELETE, GET, HEAD"),
        ("GET", "/admin/policies/reload", "POST"),
    ],
)
def test_every_405_names_the_allowed_methods(guarded, method, path, allowed):
    resp = httpx.request(method, guarded.url + path, headers={"authorization": f"Bearer {ADMIN_KEY}"})
    assert resp.status_code == 405, resp.text
    assert resp.headers["allow"] == allowed
    error = resp.json()["error"]
    assert error["code"] == "method_not_allowed" and error["type"] == "invalid_request_error"
    assert allowed in error["message"]


def test_unknown_path_is_still_a_plain_404_without_allow(guarded):
    resp = httpx.post(guarded.url + "/v1/nothing-here")
    assert resp.status_code == 404 and "allow" not in resp.headers


def _scrape(gw: RunningGateway) -> str:
    return httpx.get(gw.url + "/metrics", headers={"authorization": f"Bearer {TOKEN}"}).text


def test_model_names_from_unauthenticated_or_unknown_requests_never_become_labels(guarded):
    """With 3 label slots per label, a flood of made-up names from callers without a key (or
    with a key but an unconfigured model) used to take every slot; the configured model that
    came after was then counted as ``other``."""
    for i in range(8):
        httpx.post(
            guarded.base_url + "/chat/completions",
            json={"model": f"evil-anon-{i}", "messages": [{"role": "user", "content": "x"}]},
        )
        httpx.post(
            guarded.base_url + "/chat/completions",
            headers={"authorization": "Bearer wg-nope"},
            json={"model": f"evil-badkey-{i}", "messages": [{"role": "user", "content": "x"}]},
        )
    client = openai.OpenAI(base_url=guarded.base_url, api_key=TEST_KEY, max_retries=0)
    for i in range(8):
        with pytest.raises(openai.NotFoundError):
            client.chat.completions.create(
                model=f"evil-keyed-{i}\u200b", messages=[{"role": "user", "content": "x"}]
            )
    client.chat.completions.create(model="gpt-test", messages=[{"role": "user", "content": "x"}])

    # A call's metrics are recorded right after its answer is sent: scrape until the last is in.
    def scraped() -> tuple[str, list[str]] | None:
        text = _scrape(guarded)
        lines = [ln for ln in text.splitlines() if ln.startswith("wardgate_requests_total{")]
        return (text, lines) if any('model="gpt-test"' in ln for ln in lines) else None

    text, lines = wait_until(scraped, within=10, interval=0.02, message="the last call's metrics never came")
    assert "evil" not in text
    assert any('model="gpt-test"' in ln and 'status="200"' in ln for ln in lines), lines
    # a caller without a valid key is refused before its body (and so its model) is read
    assert any('model=""' in ln and 'status="401"' in ln and ln.endswith(" 16.0") for ln in lines), lines
    assert any('model="unknown"' in ln and 'status="404"' in ln and ln.endswith(" 8.0") for ln in lines), (
        lines
    )
    assert not any('model="other"' in ln for ln in lines), lines
