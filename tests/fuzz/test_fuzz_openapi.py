"""Schemathesis against a live gateway, from the gateway's own ``/openapi.json``.

Every operation of the OpenAI-compatible surface gets positive examples (valid per the
schema: they must be answered, not crash) and negative ones (schema violations: they must be
refused with an OpenAI-shaped 4xx). Model names are mostly drawn from the configured ones so
that examples reach the provider instead of stopping at "unknown model".

Checks: no 5xx; every status documented in the spec; errors OpenAI-shaped JSON (our own check,
stricter than the spec's schema: type, non-empty message, ``code``/``param`` string or null).

Schemathesis' pytest integration (``from_fixture``) does not run on pytest 9 (it reads a
removed ``Node._nodeid``), so operations are parametrized here and each one is driven by its
Hypothesis strategy (``APIOperation.as_strategy``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import given
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from tests.fuzz.fuzz_helpers import AUTH, ENDPOINT_MODELS, error_problems, fuzz_settings
from tests.harness import RunningGateway

#: The OpenAI-compatible surface and the probes (the admin API is fuzzed with its guards on,
#: in its areas' suites: with every guard off here, it only answers "disabled").
OPERATIONS = [
    ("POST", "/v1/chat/completions"),
    ("POST", "/v1/responses"),
    ("POST", "/v1/embeddings"),
    ("GET", "/v1/models"),
    ("GET", "/v1/models/{model}"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
]
_ALL_MODELS = sorted({m for models in ENDPOINT_MODELS.values() for m in models})


@pytest.fixture(scope="module")
def api_schema(fuzz_gateway: RunningGateway) -> Iterator[Any]:
    config = schemathesis.Config()  # explicit: no schemathesis.toml is looked up
    yield schemathesis.openapi.from_url(fuzz_gateway.url + "/openapi.json", config=config)


def test_openapi_document_lists_every_fuzzed_operation(api_schema: Any) -> None:
    labels = {op.ok().label for op in api_schema.get_all_operations()}
    assert {f"{method} {path}" for method, path in OPERATIONS} <= labels


def test_openapi_path_templates_name_their_parameters_without_starlette_convertors(api_schema: Any) -> None:
    """``/admin/budgets/{scope}/{id:path}`` was published as is: no fuzzer could fill ``{id:path}``."""
    for result in api_schema.get_all_operations():
        operation = result.ok()
        names = set(re.findall(r"\{([^}]*)\}", operation.path))
        assert all(re.fullmatch(r"\w+", n) for n in names), operation.path
        declared = {
            p["name"] for p in operation.definition.raw.get("parameters", []) if p.get("in") == "path"
        }
        assert names == declared, operation.label


def _model_choice(path: str) -> st.SearchStrategy[str | None]:
    """Mostly a model served on this path (None keeps the generated name)."""
    usable = ENDPOINT_MODELS.get(path, tuple(_ALL_MODELS))
    return st.sampled_from([*usable, *usable, None])


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_fuzz_openapi_operation_never_5xx_and_errors_are_openai_shaped(
    api_schema: Any, fuzz_gateway: RunningGateway, method: str, path: str
) -> None:
    operation = api_schema[path][method]
    cases = operation.as_strategy(GenerationMode.POSITIVE) | operation.as_strategy(GenerationMode.NEGATIVE)

    @fuzz_settings(examples=50)
    @given(case=cases, model=_model_choice(path))
    def run(case: Any, model: str | None) -> None:
        if model is not None and isinstance(case.body, dict) and isinstance(case.body.get("model"), str):
            case.body["model"] = model
        if model is not None and "model" in (case.path_parameters or {}):
            case.path_parameters["model"] = model
        resp = case.call(base_url=fuzz_gateway.url, headers=dict(AUTH), timeout=30)
        content_type = (resp.headers.get("content-type") or [""])[0]
        problems = error_problems(resp.status_code, content_type, resp.content)
        assert not problems, f"{operation.label}: {problems}\n{case.as_curl_command()}"
        case.validate_response(resp, checks=[status_code_conformance, content_type_conformance])

    run()
