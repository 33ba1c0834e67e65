"""policies/mcp.yaml is strict like every policies file; an unset credential is named, never shown."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from gateway.mcp.config import McpFileError, load_servers
from gateway.mcp.sessions import SessionRefused, bind, unbind


def _write(tmp_path: Path, doc: object) -> Path:
    path = tmp_path / "mcp.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_unknown_keys_are_refused_with_the_closest_spelling(tmp_path: Path) -> None:
    path = _write(tmp_path, {"servers": {"payments": {"url": "http://x/mcp", "timout_s": 3}}})
    with pytest.raises(McpFileError) as err:
        load_servers(path)
    assert "servers.payments.timout_s" in str(err.value) and "did you mean 'timeout_s'" in str(err.value)
    with pytest.raises(McpFileError, match="did you mean 'servers'"):
        load_servers(_write(tmp_path, {"server": {}}))


def test_bad_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(McpFileError, match="url"):
        load_servers(_write(tmp_path, {"servers": {"p": {"url": "ftp://x"}}}))
    with pytest.raises(McpFileError, match="server name"):
        load_servers(_write(tmp_path, {"servers": {"a/b": {"url": "http://x"}}}))
    with pytest.raises(McpFileError, match="auth_header"):
        load_servers(_write(tmp_path, {"servers": {"p": {"url": "http://x", "auth_env": "T"}}}))


def test_a_credential_in_the_url_is_refused_and_not_shown(tmp_path: Path) -> None:
    """The relay sends no user or password from a URL (aiohttp made them Basic auth): a
    server configured so would be called without them; the error never shows them."""
    for url in ("https://svc:s3cr3t@mcp.example/mcp", "http://token@10.0.0.1:8080/mcp?x=a@b"):
        with pytest.raises(McpFileError, match="auth_env") as err:
            load_servers(_write(tmp_path, {"servers": {"p": {"url": url}}}))
        assert "s3cr3t" not in str(err.value) and "token" not in str(err.value)
    for url in ("http://h/mcp?u=a@b", "http://h?u=a@b"):
        assert load_servers(_write(tmp_path, {"servers": {"p": {"url": url}}}))["p"].url == url


def test_an_unset_auth_env_is_logged_by_name_and_the_value_is_read_from_the_env(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    doc = {
        "servers": {"p": {"url": "http://x/mcp", "auth_header": "Authorization", "auth_env": "WG_T_TOKEN"}}
    }
    path = _write(tmp_path, doc)
    with caplog.at_level(logging.WARNING, logger="wardgate.mcp"):
        servers = load_servers(path, environ={})
    assert servers["p"].auth is None
    assert "WG_T_TOKEN is unset" in caplog.text
    servers = load_servers(path, environ={"WG_T_TOKEN": "Bearer s3cret"})
    assert servers["p"].auth == ("Authorization", "Bearer s3cret")
    assert servers["p"].allows_team("anyone")


def test_a_missing_file_is_no_servers(tmp_path: Path) -> None:
    assert load_servers(tmp_path / "absent.yaml") == {}


def test_session_ids_are_bound_to_key_and_server() -> None:
    sid = bind("wg-a", "payments", "abc123")
    assert sid is not None and unbind("wg-a", "payments", sid) == "abc123"
    for key, server, presented in (
        ("wg-b", "payments", sid),
        ("wg-a", "crm", sid),
        ("wg-a", "payments", "abc123"),
        ("wg-a", "payments", "abc124" + sid[6:]),
    ):
        with pytest.raises(SessionRefused):
            unbind(key, server, presented)
    assert bind("wg-a", "p", "bad id with spaces") is None
