"""Admin routes (GET /admin/policies, POST /admin/policies/reload) and the ``policy`` CLI."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from starlette.applications import Starlette
from typer.testing import CliRunner

from gateway.context import AppContext
from gateway.errors import GatewayError
from gateway.http.routes import gateway_error_handler
from gateway.keys.store import AdminPrincipal, KeyStore, hash_key
from gateway.models import ModelCatalog
from gateway.policy.api import routes
from gateway.policy.cli import app as cli
from gateway.policy.engines.embedded import RegorusEngine
from gateway.settings import Settings
from tests.opa_server import OpaServer
from tests.policy.helpers_policy import REPO

ADMIN, AUDITOR = "wg-admin-policy-test", "wg-auditor-policy-test"


def admin_app(service: Any) -> Starlette:
    keys = KeyStore(
        {},
        {
            hash_key(ADMIN): AdminPrincipal("a", "root", frozenset({"admin"})),
            hash_key(AUDITOR): AdminPrincipal("b", "eve", frozenset({"auditor"})),
        },
    )
    app = Starlette(routes=routes(lambda: service), exception_handlers={GatewayError: gateway_error_handler})
    ctx = AppContext(settings=Settings(), keys=keys, models=ModelCatalog({}))
    app.state.ctx = ctx
    return app


def client(app: Starlette, key: str | None) -> httpx.AsyncClient:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gw", headers=headers)


async def test_admin_policies_shows_the_active_revision_and_modules(
    make_service: Any, policy_dirs: tuple[Path, Path]
) -> None:
    rego, policies = policy_dirs
    service = await make_service(RegorusEngine(), rego, policies)
    app = admin_app(service)
    async with client(app, None) as anonymous:
        assert (await anonymous.get("/admin/policies")).status_code == 401
    async with client(app, AUDITOR) as auditor:
        resp = await auditor.get("/admin/policies")
        assert resp.status_code == 200
        body = resp.json()
        assert body["revision"] == service.manager.engine.revision and body["engine"] == "regorus"
        assert body["modules"] == [
            "rego/derived.rego",
            "rego/lib.rego",
            "rego/mcp.rego",
            "rego/request.rego",
            "rego/response.rego",
        ]
        assert body["data_files"] == ["policies/policy.yaml"]
        assert body["loaded_at"] and body["last_error"] is None
        assert body["test_results"]["failed"] == []
        assert (await auditor.post("/admin/policies/reload")).status_code == 403


async def test_admin_reload_loads_or_refuses_with_errors(
    make_service: Any, policy_dirs: tuple[Path, Path]
) -> None:
    rego, policies = policy_dirs
    recorded: list[dict[str, Any]] = []

    async def record(payload: dict[str, Any]) -> None:
        recorded.append(payload)

    service = await make_service(RegorusEngine(), rego, policies, on_change=record)
    good = service.manager.engine.revision
    assert [r["result"] for r in recorded] == ["loaded"]
    async with client(admin_app(service), ADMIN) as admin:
        assert (await admin.post("/admin/policies/reload")).json()["result"] == "unchanged"
        (rego / "broken.rego").write_text("package wardgate.broken\n\nx if {\n")
        resp = await admin.post("/admin/policies/reload")
        assert resp.status_code == 422
        error = resp.json()["error"]
        assert error["code"] == "policy_invalid" and error["revision"] == good
        assert any("rego/broken.rego:" in e for e in error["errors"])
        assert (await admin.get("/admin/policies")).json()["last_error"]["errors"] == error["errors"]
        (rego / "broken.rego").unlink()
        (policies / "extra.yaml").write_text("flag: true\n")
        resp = await admin.post("/admin/policies/reload")
        assert (
            resp.status_code == 200 and resp.json()["result"] == "loaded" and resp.json()["revision"] != good
        )
    assert [(r["result"], r["actor"]) for r in recorded] == [
        ("loaded", None),
        ("unchanged", "root"),
        ("refused", "root"),
        ("loaded", "root"),
    ]
    assert recorded[2]["revision"] == good and recorded[2]["errors"] == error["errors"]


def run_cli(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_cli_policy_test_passes_on_the_shipped_rego_under_both_engines() -> None:
    result = run_cli("test", str(REPO / "rego"), "--data", str(REPO / "policies"))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(
        line.startswith("PASS  regorus")
        and "rego/request_test.rego:" in line
        and "wardgate.request_test.test_model_outside_team_allow_list_is_denied" in line
        for line in lines
    )
    assert any(line.startswith("PASS  opa-lib") for line in lines)
    assert "passed under regorus, opa-lib" in lines[-1]


def test_cli_policy_test_names_the_failing_test_and_exits_1(tmp_path: Path) -> None:
    rego = tmp_path / "rego"
    shutil.copytree(REPO / "rego", rego)
    (rego / "extra_test.rego").write_text(
        "package wardgate.extra_test\n\ntest_ok if true\n\ntest_wrong if {\n\t1 == 2\n}\n"
    )
    result = run_cli("test", str(rego), "--data", str(REPO / "policies"), "--quiet")
    assert result.exit_code == 1
    fails = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 2 and all(
        "rego/extra_test.rego:5" in f and "wardgate.extra_test.test_wrong" in f for f in fails
    )


def test_cli_policy_test_reports_what_only_real_opa_rejects(tmp_path: Path) -> None:
    rego = tmp_path / "rego"
    rego.mkdir()
    (rego / "x.rego").write_text('package x\n\nbad if {\n\tnot input.roles[_] == "admin"\n}\n')
    result = run_cli("test", str(rego), "--data", str(tmp_path))
    assert result.exit_code == 1
    assert "ERROR opa-lib" in result.output and "rego/x.rego:4" in result.output


def test_cli_policy_eval_prints_the_decision(tmp_path: Path) -> None:
    doc = {
        "version": 1,
        "principal": {"team": "demo", "roles": []},
        "request": {"model": "gpt-4o", "messages": [], "tools": []},
        "time": {"now": "2025-01-06T12:00:00Z", "weekday": "Monday", "hour": 12},
    }
    (tmp_path / "in.json").write_bytes(orjson.dumps(doc))
    for engine in ("regorus", "opa-lib"):
        result = run_cli(
            "eval",
            "--phase",
            "request",
            "--input",
            str(tmp_path / "in.json"),
            "--rego",
            str(REPO / "rego"),
            "--data",
            str(REPO / "policies"),
            "--engine",
            engine,
        )
        assert result.exit_code == 0, result.output
        out = orjson.loads(result.output)
        assert out["outcome"] == "deny"
        assert out["decision"]["deny"] == ["model 'gpt-4o' is not allowed for team 'demo'"]


def test_cli_policy_push_uploads_modules_and_data() -> None:
    with OpaServer() as server:
        result = run_cli(
            "push", "--opa", server.url, "--rego", str(REPO / "rego"), "--data", str(REPO / "policies")
        )
        assert result.exit_code == 0, result.output
        assert sorted(server.store.policies) == [
            "wardgate/rego/lib.rego",
            "wardgate/rego/mcp.rego",
            "wardgate/rego/request.rego",
            "wardgate/rego/response.rego",
        ]
        assert server.store.data["wardgate"]["policy"]["teams"]["demo"]["models"] == ["mock-*"]
        # rego/derived.rego goes as its value (gateway/policy/derived.py), not as a module
        assert server.store.data["wardgate"]["derived"]["teams"]["demo"]["max_tokens"] == 4096


def test_cli_policy_push_to_a_dead_server_fails_cleanly() -> None:
    with OpaServer() as server:
        url = server.url
    result = run_cli(
        "push", "--opa", url, "--rego", str(REPO / "rego"), "--data", str(REPO / "policies"), "--no-test"
    )
    assert result.exit_code == 1 and "push to" in result.output


@pytest.mark.parametrize("phase", ["sideways"])
def test_cli_policy_eval_rejects_an_unknown_phase(phase: str, tmp_path: Path) -> None:
    (tmp_path / "in.json").write_text("{}")
    assert run_cli("eval", "--phase", phase, "--input", str(tmp_path / "in.json")).exit_code == 2
