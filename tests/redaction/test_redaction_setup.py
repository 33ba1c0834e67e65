"""Configuration and wiring: the component, redaction.yaml, deny-lists, NLP engine, metrics."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest
from pydantic import ValidationError

from gateway.call import ModelResponse
from gateway.context import AppContext
from gateway.keys.store import KeyStore
from gateway.models import ModelCatalog
from gateway.pipeline import Pipeline
from gateway.redaction.analyzer import ConfigError
from gateway.redaction.component import Redaction, RedactionFileError, build, load_settings
from gateway.redaction.config import Action, RedactionSettings
from gateway.redaction.phones import PhonePrecheck
from gateway.redaction.secrets import SECRET_PATTERNS
from gateway.redaction.stage import RedactInStage
from gateway.settings import Settings
from tests.redaction.conftest import chat_call


def _ctx(tmp_path: Path, **redaction: object) -> AppContext:
    settings = Settings(policies_dir=tmp_path, redaction=RedactionSettings(**redaction))
    return AppContext(settings=settings, keys=KeyStore({}, {}), models=ModelCatalog.__new__(ModelCatalog))


async def test_setup_registers_both_stages_a_service_a_closer_and_metrics(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path)
    component = Redaction()
    await component.start(ctx)
    assert sorted(s.name for s in ctx.stages) == ["redact_in", "redact_out"]
    Pipeline(ctx.stages)  # both names are in STAGE_ORDER
    redactor = component.redactor
    assert redactor is not None
    call = chat_call([{"role": "user", "content": "mail bob@example.com"}])
    await ctx.stages[0].on_request(call)
    metrics = generate_latest(ctx.registry).decode()
    assert 'wardgate_redaction_entities_total{phase="request",type="EMAIL_ADDRESS"} 1.0' in metrics
    assert "wardgate_redaction_cache_misses" in metrics and "wardgate_redaction_presidio_calls" in metrics
    # Both sides count through the pre-bound children: the same series, added to.
    answer = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "cc ann@example.org"}}]}
    for _ in range(2):
        call = chat_call([{"role": "user", "content": "mail bob@example.com"}])
        await ctx.stages[0].on_request(call)
        await ctx.stages[1].on_response(call, ModelResponse(200, {}, json=answer))
        answer["choices"][0]["message"]["content"] = "cc ann@example.org"
    metrics = generate_latest(ctx.registry).decode()
    assert 'wardgate_redaction_entities_total{phase="request",type="EMAIL_ADDRESS"} 3.0' in metrics
    assert 'wardgate_redaction_entities_total{phase="response",type="EMAIL_ADDRESS"} 2.0' in metrics
    await ctx.close()
    assert redactor.engine._executor._shutdown


async def test_setup_with_redaction_disabled_adds_nothing(tmp_path: Path) -> None:
    ctx = _ctx(tmp_path, enabled=False)
    component = Redaction()
    await component.start(ctx)
    assert ctx.stages == [] and component.redactor is None


async def test_redaction_yaml_adds_deny_lists_and_settings_win(tmp_path: Path) -> None:
    (tmp_path / "redaction.yaml").write_text(
        yaml.safe_dump(
            {
                "deny_lists": {"PROJECT_CODENAME": ["Bluebird", "Project Nightjar"]},
                "scan_output": False,
            }
        )
    )
    base = RedactionSettings(deny_lists={"CUSTOMER": ["Initech"]}, scan_output=True)
    merged = load_settings(base, tmp_path)
    assert merged.deny_lists == {
        "PROJECT_CODENAME": ["Bluebird", "Project Nightjar"],
        "CUSTOMER": ["Initech"],
    }
    assert merged.scan_output is True, "a value set in the settings wins over the file"
    assert merged.actions["PROJECT_CODENAME"] is Action.REDACT
    redactor = build(merged)
    call = chat_call([{"role": "user", "content": "Status of project nightjar and BLUEBIRD for Initech?"}])
    await RedactInStage(redactor).on_request(call)
    assert call.body["messages"][0]["content"] == (
        "Status of <PROJECT_CODENAME_1> and <PROJECT_CODENAME_2> for <CUSTOMER_1>?"
    )
    assert redactor.holdback >= len("Project Nightjar") + 16
    redactor.engine.close()


def test_a_malformed_redaction_yaml_names_the_problem(tmp_path: Path) -> None:
    (tmp_path / "redaction.yaml").write_text("deny_list: {}\n")
    with pytest.raises(RedactionFileError, match=r"unknown key .deny_list. \(did you mean .deny_lists.\?\)"):
        load_settings(RedactionSettings(), tmp_path)


def test_entity_types_nothing_can_find_are_refused_at_startup() -> None:
    with pytest.raises(ConfigError, match=r"PERSON.*NLP model"):
        build(RedactionSettings(actions={"PERSON": Action.REDACT}))
    with pytest.raises(ConfigError, match="PASSPORT_NO"):
        build(RedactionSettings(actions={"PASSPORT_NO": Action.REDACT}))


def test_a_missing_spacy_model_fails_at_startup_and_is_never_downloaded(monkeypatch) -> None:
    import spacy.cli

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError("the gateway must never download a model")

    monkeypatch.setattr(spacy.cli, "download", no_download)
    settings = RedactionSettings(
        nlp={"engine": "spacy", "models": [{"lang_code": "en", "model_name": "en_core_web_nonexistent"}]},
        actions={"PERSON": Action.REDACT},
    )
    with pytest.raises(ConfigError, match=r"en_core_web_nonexistent.*never downloads"):
        build(settings)
    with pytest.raises(ConfigError, match="not supported"):
        build(RedactionSettings(nlp={"engine": "transformers"}, actions={"PERSON": Action.REDACT}))


def test_settings_validation() -> None:
    with pytest.raises(ValidationError):
        RedactionSettings(hash_salt="short")
    with pytest.raises(ValidationError):
        RedactionSettings(thresholds={"EMAIL_ADDRESS": 1.5})
    with pytest.raises(ValidationError):
        RedactionSettings(deny_lists={"lowercase": ["x"]})
    assert RedactionSettings(phone_regions=["us", "de"]).phone_regions == ["US", "DE"]
    assert "test-salt" not in repr(RedactionSettings(hash_salt="test-salt-0123456789"))


def test_phone_regions_restrict_national_numbers_only() -> None:
    us_only = build(RedactionSettings(phone_regions=["US"]))
    text = "UK office 020 7946 0958, US office (415) 555-2671, Paris +33 1 42 68 53 00"
    found = [text[s.start : s.end] for s in us_only.engine.detect(text)]
    assert found == ["(415) 555-2671", "+33 1 42 68 53 00"]
    us_only.engine.close()


# -- soundness of the pre-filter's shortcuts, against the real recognizers ----------------------

_PRECHECK = PhonePrecheck(("US", "GB"), 2)
_DIGITS = st.text(alphabet="0123456789", min_size=1, max_size=5)
_SEPS = st.sampled_from([" ", "-", ".", "  ", "(", ") ", "/", " - ", ""])


@settings(max_examples=400, deadline=None)
@given(blocks=st.lists(st.tuples(_DIGITS, _SEPS), min_size=2, max_size=6), plus=st.booleans())
def test_phone_precheck_never_rejects_what_phonenumbers_accepts(redactor, blocks, plus: bool) -> None:
    chain = ("+" if plus else "") + "".join(d + s for d, s in blocks).rstrip(" -./(")
    text = f"call {chain} today"
    phone_spans = [s for s in redactor.engine.detect(text, prefilter=False) if s.entity == "PHONE_NUMBER"]
    if phone_spans:
        fast = redactor.engine.detect(text)
        assert [s for s in fast if s.entity == "PHONE_NUMBER"] == phone_spans


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_secret_literal_triggers_are_necessary(data) -> None:
    """Every text a secret pattern matches contains one of its pre-filter literals."""
    pattern = data.draw(st.sampled_from(SECRET_PATTERNS))
    sample = data.draw(st.from_regex(re.compile(pattern.regex, pattern.flags), fullmatch=False))
    if not re.search(pattern.regex, sample, pattern.flags):
        return
    lower = sample.lower()
    assert any((lit[2:] in lower) if lit.startswith("i:") else (lit in sample) for lit in pattern.literals)
