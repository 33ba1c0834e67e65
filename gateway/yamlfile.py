"""Reading a subsystem's YAML file from ``policies/``: one place for the shape checks."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from gateway.strict import describe, unknown_keys


def yaml_problem(exc: yaml.YAMLError) -> str:
    """``line:column: problem`` without PyYAML's quoted snippet (it may show a secret line)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{mark.line + 1}:{mark.column + 1}: " if mark is not None else ""
    return f"{where}not valid YAML: {getattr(exc, 'problem', None) or type(exc).__name__}"


def load_yaml(path: Path, error: type[Exception]) -> Any:
    """The parsed file; raises ``error`` as ``path:line:column: problem`` when it is not YAML."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise error(f"{path}:{yaml_problem(exc)}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read: {exc}") from exc


def refuse_unknown(doc: Any, schema: type[BaseModel], path: Path, error: type[Exception]) -> None:
    """Raise ``error`` naming every key of ``doc`` (any depth) that ``schema`` does not read."""
    unknown = unknown_keys(doc, schema)
    if unknown:
        raise error(describe(str(path), unknown))


def read_mapping(
    path: Path, allowed: Iterable[str] | type[BaseModel], error: type[Exception]
) -> dict[str, Any] | None:
    """The file's top-level mapping (None when the file does not exist).

    Raises ``error`` naming the file when it is not YAML, not a mapping, or has keys the
    schema does not read (at any depth when ``allowed`` is a model), so a typo in a data file
    stops the gateway at start instead of being ignored.
    """
    if not path.exists():
        return None
    doc = load_yaml(path, error) or {}
    if not isinstance(doc, dict):
        raise error(f"{path}: expected a mapping at the top level")
    if isinstance(allowed, type) and issubclass(allowed, BaseModel):
        refuse_unknown(doc, allowed, path, error)
        return doc
    unknown = set(doc) - set(allowed)
    if unknown:
        raise error(f"{path}: unknown keys {sorted(unknown)}")
    return doc
