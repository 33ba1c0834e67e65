"""Reading a subsystem's YAML file from ``policies/``: one place for the shape checks."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml


def read_mapping(path: Path, allowed: Iterable[str], error: type[Exception]) -> dict[str, Any] | None:
    """The file's top-level mapping (None when the file does not exist).

    Raises ``error`` naming the file when it is not a mapping or has keys outside
    ``allowed``, so a typo in a data file stops the gateway at start instead of being ignored.
    """
    if not path.exists():
        return None
    doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(doc, dict):
        raise error(f"{path}: expected a mapping at the top level")
    unknown = set(doc) - set(allowed)
    if unknown:
        raise error(f"{path}: unknown keys {sorted(unknown)}")
    return doc
