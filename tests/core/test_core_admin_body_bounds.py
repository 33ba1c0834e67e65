"""Admin bodies are size-checked while they are read: a huge body is refused with 413 before
it is sent (announced) or once it passes 64 KiB (chunked), never buffered whole; a caller
without an admin key is refused before its body is read; approval comments are bounded."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.harness import (
    ADMIN_KEY,
    APPROVER_KEY,
    PASS_THROUGH,
    RunningGateway,
    gateway_settings,
    running_gateway,
)
from tests.raw_http import connect, head, read_response

ADMIN_ROUTES = [
    ("POST", "/admin/keys", ADMIN_KEY),
    ("PUT", "/admin/budgets/team/test", ADMIN_KEY),
    ("PUT", "/admin/limits/team/test", ADMIN_KEY),
    ("POST", "/admin/approvals/apr_missing/approve", APPROVER_KEY),
    ("POST", "/admin/approvals/apr_missing/deny", APPROVER_KEY),
]


@pytest.fixture(scope="module")
def gw(fake_upstream: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningGateway]:
    root: Path = tmp_path_factory.mktemp("admin-bounds")
    guards = {
        **PASS_THROUGH,
        "limits": {"enabled": True, "backend": "memory"},
        "approvals": {"enabled": True},
    }
    settings = gateway_settings(root, fake_upstream.base_url, **guards)  # type: ignore[attr-defined]
    with running_gateway(settings) as running:
        yield running


def _error(resp: httpx.Response | object, status: int, code: str, param: str | None = None) -> None:
    body = resp.json()
    assert getattr(resp, "status_code", getattr(resp, "status", None)) == status, body
    assert body["error"]["code"] == code
    if param is not None:
        assert body["error"]["param"] == param


@pytest.mark.parametrize(("method", "path", "key"), ADMIN_ROUTES)
def test_an_announced_30mb_admin_body_is_413_before_it_is_sent(gw, method, path, key):
    sock = connect(gw.url)
    size = 30 * 1024 * 1024
    sock.sendall(
        head(method, path, {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}, size)
        + b"{"
        + b" " * 65536
    )
    start = time.monotonic()
    resp = read_response(sock)
    assert time.monotonic() - start < 2
    _error(resp, 413, "payload_too_large")


@pytest.mark.parametrize(("method", "path", "key"), ADMIN_ROUTES)
def test_a_chunked_admin_body_is_413_once_it_passes_64_kib(gw, method, path, key):
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"comment": "'
        for _ in range(32):  # 2 MiB in all
            sent += 65536
            yield b"a" * 65536
        yield b'"}'

    resp = httpx.request(method, gw.url + path, content=body(), headers={"Authorization": f"Bearer {key}"})
    _error(resp, 413, "payload_too_large")


@pytest.mark.parametrize(("method", "path", "key"), ADMIN_ROUTES)
def test_an_admin_route_without_a_key_is_401_before_its_body_is_read(gw, method, path, key):
    sock = connect(gw.url)
    sock.sendall(head(method, path, {"Content-Type": "application/json"}, 1024 * 1024))
    _error(read_response(sock), 401, "invalid_api_key")


def test_admin_bodies_within_the_bound_still_work(gw):
    resp = httpx.post(
        gw.url + "/admin/keys",
        json={"team": "bounds", "user": "u1", "tags": {"note": "x" * 200}},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    )
    assert resp.status_code == 201, resp.text


@pytest.mark.parametrize("action", ["approve", "deny"])
def test_an_approval_comment_over_4000_characters_is_400_with_param(gw, action):
    resp = httpx.post(
        gw.url + f"/admin/approvals/apr_missing/{action}",
        json={"comment": "é" * 4001},
        headers={"Authorization": f"Bearer {APPROVER_KEY}"},
    )
    _error(resp, 400, "invalid_request", "comment")
    at_limit = httpx.post(
        gw.url + f"/admin/approvals/apr_missing/{action}",
        json={"comment": "é" * 4000},
        headers={"Authorization": f"Bearer {APPROVER_KEY}"},
    )
    assert at_limit.status_code == 404  # the comment passed; the approval does not exist
