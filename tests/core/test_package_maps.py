"""A package docstring that maps its modules names exactly the modules present.

Area packages open with a map of their modules (``gateway/limits/__init__.py``: ``stage.py
LimitStage ...``) so the next engineer finds the file for a job without grepping. A map that
misses a file, or names one that moved, sends them the wrong way; this test keeps every map
true. A docstring counts as a map when it names at least three modules, either as
``name.py``, ``name/`` at the start of a line, or as bullets (``- ``name``: ...``, as in ``wardgate_mock``).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ROOTS = ("gateway", "orchestrator", "wardgate_mock")

_FILE = re.compile(r"(?<![\w/.])(\w+)\.py\b")
_DIR = re.compile(r"^\s*(\w+)/\s", re.MULTILINE)
_BULLET = re.compile(r"^\s*-\s+((?:``\w+``\s*,?\s*)+):", re.MULTILINE)


def _packages() -> list[Path]:
    return sorted(p.parent for root in ROOTS for p in (REPO / root).rglob("__init__.py"))


def mapped(doc: str) -> set[str]:
    """The module and subpackage names a docstring maps (empty: it has no map)."""
    names = set(_FILE.findall(doc)) | set(_DIR.findall(doc))
    for bullet in _BULLET.findall(doc):
        names |= set(re.findall(r"``(\w+)``", bullet))
    names.discard("__init__")
    return names if len(names) >= 3 else set()


def present(package: Path) -> set[str]:
    modules = {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
    subpackages = {p.parent.name for p in package.glob("*/__init__.py")}
    return modules | subpackages


MAPPED = [
    p for p in _packages() if mapped(ast.get_docstring(ast.parse((p / "__init__.py").read_text())) or "")
]


def test_the_area_packages_have_maps() -> None:
    names = {str(p.relative_to(REPO)) for p in MAPPED}
    assert {
        "gateway/approvals",
        "gateway/audit",
        "gateway/keys",
        "gateway/limits",
        "gateway/observability",
        "gateway/policy",
        "gateway/providers",
        "wardgate_mock",
    } <= names


@pytest.mark.parametrize("package", MAPPED, ids=lambda p: str(p.relative_to(REPO)))
def test_a_package_map_names_exactly_the_modules_present(package: Path) -> None:
    doc = ast.get_docstring(ast.parse((package / "__init__.py").read_text())) or ""
    names, files = mapped(doc), present(package)
    assert not files - names, f"modules missing from the map in {package.name}/__init__.py"
    assert not names - files, f"the map in {package.name}/__init__.py names modules that are not there"


def test_the_map_reader_sees_each_spelling() -> None:
    doc = """Map:

    stage.py      the stage;  api.py  routes
    store/        backends (see docs/architecture.md, tests/fake_openai.py, gateway.limits.config)
    - ``chat``, ``responses``: answers (``re._parser``)
    """
    assert mapped(doc) == {"stage", "api", "store", "chat", "responses"}
    assert mapped("Uses ``gateway/keys/keyfile.py`` and one.py.") == set()  # not a map
