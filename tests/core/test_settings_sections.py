"""Settings sections come from the components; renamed keys still work, and the new one wins.

``observability`` was part of ``audit`` (``audit.metrics``, ``audit.tracing``). An operator's
old file or environment must keep working (with a warning naming the new key), and a key set
in both places must resolve one documented way: the new spelling wins, field by field.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

from gateway.components import compose
from gateway.settings import Settings


def test_every_component_section_is_a_settings_field_and_nothing_else_is_added() -> None:
    sections = {c.name for c in compose() if c.settings_model is not None}
    assert sections == {
        "observability",
        "audit",
        "keys",
        "limits",
        "redaction",
        "approvals",
        "policy",
        "mcp",
        "console",
        "cache",
        "providers",
    }
    assert set(Settings.model_fields) == sections | {"server", "policies_dir", "rego_dir", "data_dir"}


def test_old_keys_in_the_file_move_to_observability_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    config = tmp_path / "wardgate.yaml"
    config.write_text(yaml.safe_dump({"audit": {"backend": "log", "metrics": {"max_label_values": 7}}}))
    monkeypatch.setenv("WARDGATE_CONFIG", str(config))
    with caplog.at_level(logging.WARNING, logger="wardgate.settings"):
        settings = Settings()
    assert settings.observability.metrics.max_label_values == 7
    assert settings.audit.backend == "log"  # the rest of the section is untouched
    assert [r.getMessage() for r in caplog.records] == [
        "settings: audit.metrics is deprecated, use observability.metrics"
    ]


def test_old_env_variables_still_apply(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WARDGATE_CONFIG", str(tmp_path / "absent.yaml"))
    monkeypatch.setenv("WARDGATE_AUDIT__METRICS__ENABLED", "false")
    monkeypatch.setenv("WARDGATE_AUDIT__TRACING__SAMPLE_RATIO", "0.25")
    settings = Settings()
    assert settings.observability.metrics.enabled is False
    assert settings.observability.tracing.sample_ratio == 0.25


def test_a_key_set_in_both_places_takes_the_new_spelling_field_by_field(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WARDGATE_CONFIG", str(tmp_path / "absent.yaml"))
    settings = Settings(
        audit={"metrics": {"enabled": False, "max_label_values": 5}},
        observability={"metrics": {"max_label_values": 9}},
    )
    assert settings.observability.metrics.max_label_values == 9  # new wins
    assert settings.observability.metrics.enabled is False  # only the old one set it


def test_the_old_keys_are_still_checked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WARDGATE_CONFIG", str(tmp_path / "absent.yaml"))
    with pytest.raises(ValueError, match="sample_ratio"):
        Settings(audit={"tracing": {"sample_ratio": 3}})
    with pytest.raises(ValueError, match="observability"):
        Settings(observability={"metrics": {"enabled": True}, "typo": 1})
