"""A typo in the configuration refuses the start, naming the file, the key and the fix.

Each test runs the real CLI (``python -m gateway serve`` / ``config check``) in a fresh
process on a temporary copy of the example tree, with an environment holding no ``WARDGATE_*``
variable but the ones the test sets, and asserts the exit code and the message an operator
reads. A refused start must come before anything listens, without a traceback.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.configcheck import ConfigError, check_all, load_settings
from gateway.settings import Settings
from gateway.strict import unknown_env

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tree(tmp_path: Path, config: str = "") -> Path:
    """A copy of the example policies and Rego, and a wardgate.yaml pointing at them."""
    shutil.copytree(REPO / "policies", tmp_path / "policies")
    shutil.copytree(REPO / "rego", tmp_path / "rego")
    path = tmp_path / "wardgate.yaml"
    path.write_text(
        f"policies_dir: {tmp_path / 'policies'}\nrego_dir: {tmp_path / 'rego'}\n"
        f"data_dir: {tmp_path / 'data'}\n{config}",
        encoding="utf-8",
    )
    return path


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("WARDGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args],
        cwd=cwd,
        env={**clean, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_serve_refuses_unknown_keys_at_any_depth_and_unknown_env_vars(tmp_path: Path) -> None:
    config = _tree(tmp_path, "server:\n  wrokers: 4\nlimits:\n  backnd: redis\n")
    env = {"WARDGATE_LIMITS__BACKND": "redis", "WARDGATE_LIMIT__BACKEND": "redis"}
    done = _run("serve", "--config", str(config), env=env)
    assert done.returncode == 2, done.stderr
    err = done.stderr
    assert "Traceback" not in err and "listening" not in done.stdout
    assert f"{config}: unknown key 'server.wrokers' (did you mean 'workers'?)" in err
    assert f"{config}: unknown key 'limits.backnd' (did you mean 'backend'?)" in err
    assert "unknown variable WARDGATE_LIMITS__BACKND (did you mean WARDGATE_LIMITS__BACKEND?)" in err
    assert "unknown variable WARDGATE_LIMIT__BACKEND (did you mean WARDGATE_LIMITS__BACKEND?)" in err


def test_serve_refuses_a_named_config_file_that_does_not_exist(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    for args, env in ((["--config", str(missing)], {}), ([], {"WARDGATE_CONFIG": str(missing)})):
        done = _run("serve", *args, env=env)
        assert done.returncode == 2, done.stderr
        assert f"{missing}: config file not found" in done.stderr
        assert "Traceback" not in done.stderr


def test_malformed_yaml_is_one_line_with_line_and_column(tmp_path: Path) -> None:
    config = tmp_path / "wardgate.yaml"
    config.write_text("server:\n  port: [8080\nlimits: {}\n", encoding="utf-8")
    done = _run("serve", "--config", str(config))
    assert done.returncode == 2
    assert f"{config}:3:7: not valid YAML" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 2


def test_a_data_file_that_is_not_yaml_is_one_line_not_two(tmp_path: Path) -> None:
    """limits.yaml is read by the limits engine and, as Rego data, by the policy set: both used
    to report the same broken bracket, in two spellings."""
    config = _tree(tmp_path)
    limits = tmp_path / "policies" / "limits.yaml"
    limits.write_text("scopes:\n  key:\n    requests_per_minute: [600\n", encoding="utf-8")
    done = _run("config", "check", "--config", str(config))
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == [f"error: {limits}:4:1: not valid YAML: expected ',' or ']', but got '<stream end>'"], (
        errors
    )


def test_a_policies_dir_that_does_not_exist_refuses_the_start(tmp_path: Path) -> None:
    """Every file under it would read as absent: a gateway with no models and no keys."""
    config = _tree(tmp_path, f"server:\n  port: {_free_port()}\n")
    config.write_text(
        config.read_text().replace("policies_dir: ", "policies_dir: /nowhere"), encoding="utf-8"
    )
    done = _run("serve", "--config", str(config))
    assert done.returncode == 2 and "listening" not in done.stdout, done.stderr
    assert f"/nowhere{tmp_path / 'policies'}: policies_dir does not exist" in done.stderr, done.stderr


def test_config_check_lists_every_error_of_a_bad_tree(tmp_path: Path) -> None:
    config = _tree(tmp_path, "approvals:\n  groups:\n    finance:\n      approvals_requird: 2\n")
    policies = tmp_path / "policies"
    models = policies / "models.yaml"
    models.write_text(models.read_text().replace("api_key_env:", "api_key_evn:", 1), encoding="utf-8")
    keys = policies / "keys.yaml"
    keys.write_text(keys.read_text().replace("    models: [", "    modles: [", 1), encoding="utf-8")
    limits = policies / "limits.yaml"
    limits.write_text(
        limits.read_text().replace("requests_per_minute:", "requests_per_mintue:", 1), encoding="utf-8"
    )
    pricing = policies / "pricing.yaml"
    pricing.write_text(pricing.read_text() + "\nalises: {}\n", encoding="utf-8")
    approvals = policies / "approvals.yaml"
    approvals.write_text(approvals.read_text().replace("\nhold_s:", "\nhold_sec:", 1), encoding="utf-8")
    redaction = policies / "redaction.yaml"
    redaction.write_text(redaction.read_text() + "\nmask_chr: '#'\n", encoding="utf-8")
    (tmp_path / "rego" / "broken.rego").write_text("package wardgate.broken\nx := {\n", encoding="utf-8")

    done = _run("config", "check", "--config", str(config), env={"WARDGATE_SERVER__WROKERS": "2"})
    assert done.returncode == 1
    err = done.stderr
    assert "approvals.groups.finance.approvals_requird' (did you mean 'approvals_required'?)" in err
    assert "unknown variable WARDGATE_SERVER__WROKERS (did you mean WARDGATE_SERVER__WORKERS?)" in err
    assert (
        f"{models}: unknown key 'models.gpt-4o-mini.deployments[0].api_key_evn' (did you mean 'api_key_env'?)"
        in err
    )
    assert f"{keys}: unknown key 'keys[0].modles' (did you mean 'models'?)" in err
    assert (
        f"{limits}: unknown key 'scopes.key.requests_per_mintue' (did you mean 'requests_per_minute'?)" in err
    )
    assert f"{pricing}: unknown key 'alises' (did you mean 'aliases'?)" in err
    assert f"{approvals}: unknown key 'hold_sec' (did you mean 'hold_s'?)" in err
    assert f"{redaction}: unknown key 'mask_chr' (did you mean 'mask_char'?)" in err
    assert "rego/broken.rego:" in err
    assert "Traceback" not in err


def test_a_typo_in_policy_yaml_or_mcp_yaml_refuses_the_start_and_x_keys_are_yours(tmp_path: Path) -> None:
    """Rego reads a misspelt key of policy.yaml as undefined: the team's token cap (or every
    high-stakes approval, for ``high_stake:``) would silently go. mcp.yaml is walked too."""
    config = _tree(tmp_path, f"server:\n  port: {_free_port()}\n")
    policy = tmp_path / "policies" / "policy.yaml"
    shipped = policy.read_text(encoding="utf-8")
    assert "    max_tokens: 4096" in shipped and "\nhigh_stakes:" in shipped
    policy.write_text(
        shipped.replace("    max_tokens: 4096", "    max_token: 4096", 1).replace(
            "\nhigh_stakes:", "\nhigh_stake:", 1
        ),
        encoding="utf-8",
    )
    mcp = tmp_path / "policies" / "mcp.yaml"
    mcp.write_text(mcp.read_text(encoding="utf-8").replace("timeout_s:", "timout_s:", 1), encoding="utf-8")
    done = _run("serve", "--config", str(config))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert "listening" not in done.stdout
    assert f"{mcp}: unknown key 'servers.crm.timout_s' (did you mean 'timeout_s'?)" in done.stderr
    assert "policy.yaml: unknown key 'teams.demo.max_token' (did you mean 'max_tokens'?)" in done.stderr
    assert "unknown key 'high_stake' (did you mean 'high_stakes'?)" in done.stderr
    done = _run("config", "check", "--config", str(config))
    assert done.returncode == 1 and "'teams.demo.max_token'" in done.stderr, done.stderr

    # Data of one's own for rules of one's own: x_ keys, at any depth.
    policy.write_text(
        shipped.replace("    max_tokens: 4096", "    max_tokens: 4096\n    x_cost_centre: 42", 1)
        + "\nx_regions: [eu]\n",
        encoding="utf-8",
    )
    mcp.write_text(mcp.read_text(encoding="utf-8").replace("timout_s:", "timeout_s:", 1), encoding="utf-8")
    done = _run("config", "check", "--config", str(config))
    assert done.returncode == 0, done.stderr


def test_config_check_passes_the_example_tree_and_the_embedded_defaults(tmp_path: Path) -> None:
    done = _run("config", "check")  # make run: ./wardgate.yaml, no env, no services
    assert done.returncode == 0, done.stderr
    assert "configuration OK" in done.stdout
    assert check_all(_tree(tmp_path, "server:\n  workers: 1\n"), environ={}) == []


def test_config_show_masks_secrets(tmp_path: Path) -> None:
    salt = "pepper-pepper-pepper-42"
    config = _tree(
        tmp_path,
        f"redaction:\n  hash_salt: {salt}\naudit:\n  postgres_dsn: postgresql://wg:hunter22@db:5432/audit\n",
    )
    done = _run("config", "show", "--config", str(config), env={"WARDGATE_SERVER__METRICS_TOKEN": "t" * 20})
    assert done.returncode == 0, done.stderr
    assert salt not in done.stdout and "hunter22" not in done.stdout and "t" * 20 not in done.stdout
    assert "postgresql://wg:****@db:5432/audit" in done.stdout
    assert "workers: 1" in done.stdout


def test_deprecated_audit_metrics_keys_still_work_with_their_warning(tmp_path: Path) -> None:
    config = _tree(tmp_path, "audit:\n  metrics:\n    enabled: false\n")
    settings = load_settings(config, environ={"WARDGATE_AUDIT__TRACING__SAMPLE_RATIO": "0.5"})
    assert settings.observability.metrics.enabled is False
    config.write_text(config.read_text().replace("enabled: false", "enabld: false"), encoding="utf-8")
    with pytest.raises(
        ConfigError, match=r"unknown key 'audit\.metrics\.enabld' \(did you mean 'enabled'\?\)"
    ):
        load_settings(config, environ={})


def test_env_vars_the_project_reads_that_are_not_settings_are_allowed(tmp_path: Path) -> None:
    environ = {
        "WARDGATE_CONFIG": "x",
        "WARDGATE_APPROVALS_KEY": "k",
        "WARDGATE_URL": "http://x",
        "WARDGATE_ADMIN_KEY": "wg-x",
        "WARDGATE_KEY": "wg-y",
        "WARDGATE_AGENT_KEY_BILLING": "wg-z",
        "WARDGATE_BASE_URL": "http://x/v1",
        "WARDGATE_API_KEY": "wg-a",
        "WARDGATE_SERVER__PORT": "9000",
        "WARDGATE_APPROVALS__GROUPS__FINANCE__APPROVALS_REQUIRED": "2",
        "wardgate_limits__backend": "redis",
        "WARDGATE_MY_PROVIDER": "named by a models.yaml api_key_env",
    }
    assert unknown_env(environ, Settings, also_allowed={"WARDGATE_MY_PROVIDER"}) == []
    # a variable a setting names by default (audit.signing_key_env) is read by the gateway
    assert check_all(_tree(tmp_path), environ={"WARDGATE_AUDIT_SIGNING_KEY": "k"}) == []
    assert [u.path for u in unknown_env({"WARDGATE_SERVER__PORTT": "1"}, Settings)] == [
        "WARDGATE_SERVER__PORTT"
    ]
