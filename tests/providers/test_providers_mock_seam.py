"""The scripted mock is a plugin: the product never imports it, and finds it only by its kind.

``gateway/`` resolves a deployment's ``provider:`` through ``gateway.providers.registry``
(built-in ``openai``, then the ``wardgate.providers`` entry points). These tests keep the
seam honest: no import of ``wardgate_mock`` anywhere under ``gateway/`` (statically, and at
run time for a catalog without mock deployments), the mock reachable through its entry
point, a clear start-up error for a kind nobody provides, and no use of the stdlib's private
regex parser.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from gateway.call import Endpoint
from gateway.models import Deployment, ModelCatalog, ModelEntry
from gateway.providers.config import ProviderSettings
from gateway.providers.registry import ENTRY_POINT_GROUP, UnknownProviderKind, resolve, wire_system
from gateway.providers.router import Router
from wardgate_mock import MockProvider

REPO = Path(__file__).resolve().parents[2]
PRIVATE_RE = {"re._parser", "re._constants", "re._compiler", "sre_parse", "sre_constants", "sre_compile"}


def _imports(path: Path) -> set[str]:
    """Every module a file imports: import statements and literal import_module/__import__."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
    return found


def _files(package: str) -> list[Path]:
    files = sorted((REPO / package).rglob("*.py"))
    assert files, package
    return files


def test_no_module_of_the_product_imports_the_mock() -> None:
    offenders = {
        str(path.relative_to(REPO)): sorted(m for m in _imports(path) if m.split(".")[0] == "wardgate_mock")
        for path in _files("gateway")
    }
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_product_keeps_no_mock_provider() -> None:
    assert not list((REPO / "gateway" / "providers").glob("mock*.py"))


def test_no_shipped_module_touches_the_private_regex_parser() -> None:
    """The mock reads regex syntax with its own parser (``wardgate_mock/syntax.py``)."""
    users = {
        str(path.relative_to(REPO))
        for package in ("gateway", "wardgate_mock")
        for path in _files(package)
        if _imports(path) & PRIVATE_RE
    }
    assert users == set()


def test_the_mock_is_declared_as_a_provider_plugin() -> None:
    (point,) = entry_points(group=ENTRY_POINT_GROUP, name="mock")
    assert point.value == "wardgate_mock.plugin:provider"


def _catalog(*deployments: Deployment) -> ModelCatalog:
    entry = ModelEntry("m", (Endpoint.CHAT,), deployments)
    return ModelCatalog({"m": entry})


def test_a_mock_deployment_gets_the_mock_through_the_entry_point() -> None:
    router = Router.build(_catalog(Deployment("dep-a", "mock", "m")), ProviderSettings())
    provider = router._providers["dep-a"]
    assert isinstance(provider, MockProvider)
    assert provider.name == "dep-a"


def test_the_audit_names_the_system_a_kind_speaks_without_naming_the_mock() -> None:
    """The mock speaks OpenAI's API, and says so through its factory (``system``): the audit
    record and the trace name ``openai`` for it, as before, with no ``"mock"`` in the product."""
    assert wire_system("openai") == "openai"
    assert wire_system("mock") == "openai"
    assert wire_system("some-kind-nobody-provides") == "some-kind-nobody-provides"


def test_an_unknown_kind_stops_the_build_naming_the_deployment_and_the_kinds_available() -> None:
    with pytest.raises(UnknownProviderKind) as err:
        Router.build(_catalog(Deployment("dep-x", "opneai", "m")), ProviderSettings())
    message = str(err.value)
    assert "dep-x" in message and "'opneai'" in message
    assert "openai" in message and "mock" in message and ENTRY_POINT_GROUP in message


def test_kinds_passed_to_the_build_win_over_plugins_and_built_ins() -> None:
    made: list[str] = []

    def double(dep: Deployment, settings: ProviderSettings) -> MockProvider:
        made.append(dep.name)
        return MockProvider(name="double")

    router = Router.build(
        _catalog(Deployment("d1", "openai", "m", base_url="http://x"), Deployment("d2", "mock", "m")),
        ProviderSettings(),
        kinds={"openai": double, "mock": double},
    )
    assert made == ["d1", "d2"]
    assert {p.name for p in router._providers.values()} == {"double"}
    assert resolve("openai") is not double


def test_a_gateway_without_mock_deployments_never_loads_the_mock() -> None:
    """At run time too: the app and an openai-only router leave ``wardgate_mock`` unimported."""
    script = textwrap.dedent(
        """
        import sys
        import gateway.app, gateway.cli
        from gateway.call import Endpoint
        from gateway.models import Deployment, ModelCatalog, ModelEntry
        from gateway.providers.config import ProviderSettings
        from gateway.providers.router import Router

        dep = Deployment("real", "openai", "gpt", base_url="http://127.0.0.1:9")
        Router.build(ModelCatalog({"gpt": ModelEntry("gpt", (Endpoint.CHAT,), (dep,))}), ProviderSettings())
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "wardgate_mock")
        assert not loaded, loaded
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-2000:]
