"""A guard added through the component registry alone works end to end over HTTP.

The worked example of docs/adding-a-guard.md (``tests/core/deny_words_guard.py``) is added
to the gateway's own components, with its own settings section and its name in the stage
order, and nothing else: no edit to the app, the settings module or the pipeline. The real
openai SDK then meets it through a served gateway.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest

from gateway.app import create_app
from gateway.components import compose
from gateway.http.launch import ServedApp, serve_app
from gateway.settings import Settings, settings_class
from tests.core.deny_words_guard import EXAMPLE_ORDER, DenyWords
from tests.harness import ADMIN_KEY, AUDITOR_KEY, PASS_THROUGH, TEST_KEY, gateway_settings

WORDS = ["Bluebird", "nightjar"]


@pytest.fixture(scope="module")
def guarded(
    fake_upstream: object, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServedApp, DenyWords]]:
    base = gateway_settings(tmp_path_factory.mktemp("guard"), fake_upstream.base_url, **PASS_THROUGH)  # type: ignore[attr-defined]
    guard = DenyWords()
    components = [*compose(), guard]
    # The guard's section joins the settings the way every component's does.
    settings = settings_class(components)(
        **{name: getattr(base, name) for name in Settings.model_fields},
        deny_words={"enabled": True, "words": WORDS},
    )
    with serve_app(create_app(settings, components, EXAMPLE_ORDER)) as served:
        yield served, guard
    assert guard.closed  # its closer ran at shutdown


def _client(served: ServedApp) -> openai.OpenAI:
    return openai.OpenAI(base_url=served.base_url, api_key=TEST_KEY, max_retries=0)


def test_the_guard_runs_in_its_place_and_refuses_a_denied_word(guarded: tuple[ServedApp, DenyWords]) -> None:
    served, guard = guarded
    names = [s.name for s in served.ctx.pipeline.stages]
    assert names[: names.index("forward")] == ["authenticate", "deny_words"]
    before = guard.stage.refused
    with pytest.raises(openai.PermissionDeniedError) as refused:
        _client(served).chat.completions.create(
            model="mock-chat", messages=[{"role": "user", "content": "status of project BLUEBIRD?"}]
        )
    assert refused.value.status_code == 403
    error = refused.value.body
    assert error["code"] == "word_denied" and error["type"] == "permission_error"
    assert error["param"] == "messages" and "bluebird" not in error["message"].casefold()
    assert guard.stage.refused == before + 1


def test_a_clean_request_passes_the_guard(guarded: tuple[ServedApp, DenyWords]) -> None:
    served, _ = guarded
    answer = _client(served).chat.completions.create(
        model="mock-chat", messages=[{"role": "user", "content": "hello"}]
    )
    assert answer.choices[0].message.content


def test_its_route_readiness_and_openapi_come_from_the_component(
    guarded: tuple[ServedApp, DenyWords],
) -> None:
    served, guard = guarded
    with httpx.Client(base_url=served.url) as http:
        report = http.get("/admin/deny-words", headers={"authorization": f"Bearer {AUDITOR_KEY}"})
        assert report.status_code == 200 and report.json() == {"words": 2, "refused": guard.stage.refused}
        assert http.get("/admin/deny-words").status_code == 401  # admin key required, like every admin route
        ready = http.get("/readyz").json()
        assert ready["status"] == "ready" and ready["checks"]["deny_words"] == "ok: 2 words"
        spec = http.get("/openapi.json", headers={"authorization": f"Bearer {ADMIN_KEY}"}).json()
        assert "/admin/deny-words" in spec["paths"]


def test_the_section_is_read_from_the_environment_like_any_other(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("WARDGATE_CONFIG", str(tmp_path / "absent.yaml"))
    monkeypatch.setenv("WARDGATE_DENY_WORDS__ENABLED", "true")
    monkeypatch.setenv("WARDGATE_DENY_WORDS__WORDS", '["merlin"]')
    settings = settings_class([*compose(), DenyWords()])()
    assert settings.deny_words.enabled and settings.deny_words.words == ["merlin"]
    # The gateway's own settings know nothing of it (and refuse an unknown section).
    with pytest.raises(ValueError, match="deny_words"):
        Settings(deny_words={"enabled": True})
