"""A policy set read from disk: Rego modules, their tests, the data, and a revision id.

Modules come from ``rego/`` (recursively; ``*_test.rego`` kept apart as tests). Data comes
from ``policies/``: every top-level ``*.yaml``/``*.yml``/``*.json`` file except ``keys.yaml``
(key hashes are nobody's policy input) and ``mcp.yaml`` (upstream addresses; its path is the
Rego package ``wardgate.mcp``) becomes ``data.wardgate.<file stem>``. The revision is
a short hash of all of it, so the same files always give the same revision on every replica.
``policy.yaml``'s keys are checked against what the shipped Rego reads (``dataschema.py``).
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from gateway.policy.dataschema import unknown_policy_keys

#: The data file whose keys the shipped Rego reads (``data.wardgate.policy``): checked for typos.
POLICY_DATA_STEM = "policy"
#: Files in policies/ that are never policy data.
EXCLUDED_DATA_FILES = frozenset({"keys.yaml", "keys.yml", "mcp.yaml", "mcp.yml"})
DATA_SUFFIXES = (".yaml", ".yml", ".json")
_PACKAGE_RE = re.compile(r"^\s*package\s+([A-Za-z_][\w.]*)", re.MULTILINE)


class PolicySourceError(ValueError):
    """A policy or data file cannot be used; ``location`` is ``file:line`` when known."""

    def __init__(self, message: str, location: str | None = None) -> None:
        super().__init__(f"{location}: {message}" if location else message)
        self.message = message
        self.location = location


@dataclass(frozen=True, slots=True)
class PolicySet:
    """One immutable version of the policies: what a revision id names."""

    modules: Mapping[str, str]
    data: Mapping[str, Any]
    tests: Mapping[str, str] = field(default_factory=dict)
    revision: str = ""
    data_files: tuple[str, ...] = ()
    loaded_at: float = field(default_factory=time.time)

    @classmethod
    def build(
        cls,
        modules: Mapping[str, str],
        data: Mapping[str, Any],
        tests: Mapping[str, str] | None = None,
        data_files: tuple[str, ...] = (),
    ) -> PolicySet:
        tests = dict(tests or {})
        return cls(
            modules=dict(modules),
            data=dict(data),
            tests=tests,
            revision=revision_of(modules, data, tests),
            data_files=data_files,
        )

    def all_modules(self) -> dict[str, str]:
        return {**self.modules, **self.tests}


def revision_of(
    modules: Mapping[str, str], data: Mapping[str, Any], tests: Mapping[str, str] | None = None
) -> str:
    """Short content hash of modules (and tests) and data: same files, same revision."""
    h = hashlib.sha256()
    merged = {**modules, **(tests or {})}
    for name in sorted(merged):
        h.update(name.encode() + b"\0" + merged[name].encode("utf-8", "surrogatepass") + b"\0")
    h.update(orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS))
    return h.hexdigest()[:12]


def is_test_module(name: str) -> bool:
    return name.endswith("_test.rego")


def read_modules(rego_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """(modules, tests) keyed by path relative to the rego dir's parent (e.g. ``rego/x.rego``)."""
    if not rego_dir.is_dir():
        raise PolicySourceError(f"policy directory {rego_dir} does not exist")
    modules: dict[str, str] = {}
    tests: dict[str, str] = {}
    for path in sorted(rego_dir.rglob("*.rego")):
        name = (Path(rego_dir.name) / path.relative_to(rego_dir)).as_posix()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise PolicySourceError(f"cannot read: {exc}", f"{name}:1") from exc
        (tests if is_test_module(name) else modules)[name] = text
    return modules, tests


def read_data(policies_dir: Path) -> tuple[dict[str, Any], tuple[str, ...]]:
    """``{"wardgate": {stem: document}}`` and the files it came from."""
    docs: dict[str, Any] = {}
    files: list[str] = []
    if not policies_dir.is_dir():
        return {"wardgate": docs}, ()
    for path in sorted(policies_dir.iterdir()):
        if not path.is_file() or path.suffix not in DATA_SUFFIXES or path.name in EXCLUDED_DATA_FILES:
            continue
        if path.name.startswith("."):
            continue
        name = f"{policies_dir.name}/{path.name}"
        if path.stem in docs:
            raise PolicySourceError(f"two data files named {path.stem!r}", f"{name}:1")
        docs[path.stem] = _load_document(path, name)
        if path.stem == POLICY_DATA_STEM:
            unknown = unknown_policy_keys(docs[path.stem])
            if unknown:
                raise PolicySourceError("; ".join(map(str, unknown)), name)
        files.append(name)
    return {"wardgate": docs}, tuple(files)


def _load_document(path: Path, name: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicySourceError(f"cannot read: {exc}", f"{name}:1") from exc
    if path.suffix == ".json":
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            raise PolicySourceError(f"invalid JSON: {exc}", f"{name}:{getattr(exc, 'lineno', 1)}") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 1
        raise PolicySourceError(f"invalid YAML: {getattr(exc, 'problem', exc)}", f"{name}:{line}") from exc
    try:
        # Through JSON and back: dates, sets and non-string keys would differ per engine.
        return orjson.loads(orjson.dumps(doc, option=orjson.OPT_NON_STR_KEYS))
    except TypeError as exc:
        raise PolicySourceError(f"not JSON-compatible data: {exc}", f"{name}:1") from exc


def packages(modules: Mapping[str, str]) -> dict[str, str]:
    """Module path → Rego package name."""
    out: dict[str, str] = {}
    for name, text in modules.items():
        m = _PACKAGE_RE.search(text)
        if m:
            out[name] = m.group(1)
    return out


def check_data_conflicts(modules: Mapping[str, str], data: Mapping[str, Any]) -> None:
    """A data file must not land where a package lives (data.wardgate.request is the policy)."""
    stems = set((data.get("wardgate") or {}).keys())
    for name, package in packages(modules).items():
        parts = package.split(".")
        if len(parts) >= 2 and parts[0] == "wardgate" and parts[1] in stems:
            raise PolicySourceError(
                f"data file {parts[1]!r} conflicts with package {package}: rename the data file",
                f"{name}:1",
            )


def load_policy_set(rego_dir: Path, policies_dir: Path) -> PolicySet:
    """Read and hash one policy set; raises ``PolicySourceError`` on unreadable files."""
    modules, tests = read_modules(rego_dir)
    data, files = read_data(policies_dir)
    check_data_conflicts({**modules, **tests}, data)
    return PolicySet.build(modules, data, tests, files)
