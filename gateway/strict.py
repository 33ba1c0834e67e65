"""Unknown keys are errors: a typo in a config file or a ``WARDGATE_*`` variable refuses the start.

pydantic ignores keys a model does not declare unless the model says ``extra="forbid"``, and
pydantic-settings never sees an env var that names no field. So ``limits: {backnd: redis}``,
``WARDGATE_LIMITS__BACKND=redis`` or ``api_key_evn:`` in models.yaml would all start the gateway
on a default that quietly weakens a guard. This module walks the raw document (or the env var's
path) against the schema's fields, at every depth, and names each unknown key by its dotted
path with the closest known spelling (``difflib``), so the operator fixes it in one read.

The walk follows what pydantic would build: nested models, ``Optional``/unions, ``list[Model]``
and ``dict[str, Model]``. Anything else (free-form mappings such as HTTP headers or tags) is not
walked: any key is legal there.
"""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel


@dataclass(frozen=True, slots=True)
class UnknownKey:
    """One key the schema does not have, at ``path`` (dotted, list items as ``[i]``)."""

    path: str
    suggestion: str | None = None

    def __str__(self) -> str:
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        return f"unknown key {self.path!r}{hint}"


def suggest(word: str, known: Iterable[str]) -> str | None:
    """The closest known spelling of ``word``, if one is close enough to be a typo."""
    found = difflib.get_close_matches(word, sorted(known), n=1, cutoff=0.6)
    return found[0] if found else None


def _names(model: type[BaseModel]) -> dict[str, Any]:
    """Field name (and alias) → annotation."""
    out: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        out[name] = info.annotation
        if info.alias:
            out[info.alias] = info.annotation
    return out


def _models_in(annotation: Any) -> list[tuple[str, type[BaseModel]]]:
    """How ``annotation`` holds models: ("", M) itself, ("list", M) items, ("dict", M) values."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [("", annotation)]
    origin = get_origin(annotation)
    args = get_args(annotation)
    if origin in (Union, types.UnionType):
        return [found for arg in args for found in _models_in(arg)]
    if origin in (list, tuple, set, frozenset) and args:
        return [("list", m) for kind, m in _models_in(args[0]) if kind == ""]
    if origin in (dict, Mapping) and len(args) == 2:
        return [("dict", m) for kind, m in _models_in(args[1]) if kind == ""]
    return []


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def unknown_keys(data: Any, model: type[BaseModel], path: str = "") -> list[UnknownKey]:
    """Every key of ``data`` (at any depth) that ``model`` would not read."""
    if not isinstance(data, Mapping):
        return []
    fields = _names(model)
    found: list[UnknownKey] = []
    for key, value in data.items():
        where = _join(path, str(key))
        if key not in fields:
            found.append(UnknownKey(where, suggest(str(key), fields)))
            continue
        found.extend(_walk_value(value, fields[key], where))
    return found


def _walk_value(value: Any, annotation: Any, where: str) -> list[UnknownKey]:
    holders = _models_in(annotation)
    if not holders:
        return []
    if isinstance(value, Mapping):
        direct = [m for kind, m in holders if kind == ""]
        if direct:
            return unknown_keys(value, direct[0], where)
        values = [m for kind, m in holders if kind == "dict"]
        if values:
            return [
                k for name, item in value.items() for k in unknown_keys(item, values[0], f"{where}.{name}")
            ]
    if isinstance(value, list):
        items = [m for kind, m in holders if kind == "list"]
        if items:
            return [k for i, item in enumerate(value) for k in unknown_keys(item, items[0], f"{where}[{i}]")]
    return []


def default_env_names(model: type[BaseModel], seen: set[type[BaseModel]] | None = None) -> set[str]:
    """The defaults of every ``*_env`` field (``audit.signing_key_env``…), at any depth: the
    variables the gateway reads for secrets even when the configuration does not name them."""
    seen = set() if seen is None else seen
    if model in seen:
        return set()
    seen.add(model)
    found: set[str] = set()
    for name, info in model.model_fields.items():
        if name.endswith("_env") and isinstance(info.default, str):
            found.add(info.default)
        for _, sub in _models_in(info.annotation):
            found |= default_env_names(sub, seen)
    return found


def describe(where: str, problems: Iterable[UnknownKey]) -> str:
    """One line per unknown key, each prefixed with the file (or source) it is in."""
    return "\n".join(f"{where}: {p}" for p in problems)


#: ``WARDGATE_*`` variables the gateway, its CLI, the orchestrator and the test suite read that
#: are not settings: WARDGATE_CONFIG (the settings file), WARDGATE_APPROVALS_KEY (the approvals'
#: sealing key, ``approvals.answer_key_env``), WARDGATE_URL / WARDGATE_ADMIN_KEY / WARDGATE_KEY
#: (the CLI's and the README's client side), WARDGATE_BASE_URL / WARDGATE_API_KEY /
#: WARDGATE_AGENT_KEY_<AGENT> (the orchestrator), WARDGATE_FUZZ_EXAMPLES (the fuzz tests),
#: WARDGATE_AUDIT_SIGNING_KEY (the audit anchors' signing key, ``audit.signing_key_env``).
NOT_SETTINGS = frozenset(
    {
        "WARDGATE_CONFIG",
        "WARDGATE_APPROVALS_KEY",
        "WARDGATE_AUDIT_SIGNING_KEY",
        "WARDGATE_URL",
        "WARDGATE_ADMIN_KEY",
        "WARDGATE_KEY",
        "WARDGATE_BASE_URL",
        "WARDGATE_API_KEY",
        "WARDGATE_FUZZ_EXAMPLES",
    }
)
#: Prefixes of non-settings variables: the orchestrator's per-agent keys, the test suite's own.
NOT_SETTINGS_PREFIXES = ("WARDGATE_AGENT_KEY_", "WARDGATE_TEST_")

_PREFIX = "WARDGATE_"
_DELIMITER = "__"


def unknown_env(
    environ: Mapping[str, str], model: type[BaseModel], also_allowed: Iterable[str] = ()
) -> list[UnknownKey]:
    """``WARDGATE_*`` variables that name no setting (``WARDGATE_LIMITS__BACKND``).

    A variable is fine when its path (``__``-separated, case-insensitive, as pydantic-settings
    reads it) reaches a field, when it is one of the non-settings variables above, or when the
    configuration names it (``also_allowed``: a model's ``api_key_env``, a webhook's
    ``secret_env``): those hold secrets the settings point at.
    """
    allowed = NOT_SETTINGS | set(also_allowed)
    found: list[UnknownKey] = []
    for var in sorted(environ):
        if not var.upper().startswith(_PREFIX) or var in allowed or var.startswith(NOT_SETTINGS_PREFIXES):
            continue
        parts = var[len(_PREFIX) :].lower().split(_DELIMITER)
        problem = _env_path(parts, model)
        if problem is not None:
            bad, known = problem
            guess = suggest(parts[bad], known)
            spelled = None
            if guess is not None:
                fixed = [*parts[:bad], guess, *parts[bad + 1 :]]
                spelled = _PREFIX + _DELIMITER.join(p.upper() for p in fixed)
            elif bad == 0:
                spelled = suggest(var, allowed)
            found.append(UnknownKey(var, spelled))
    return found


def _env_path(parts: list[str], model: type[BaseModel]) -> tuple[int, list[str]] | None:
    """None when ``parts`` reaches a field; else (index of the first bad part, known names)."""
    current: type[BaseModel] | None = model
    for i, part in enumerate(parts):
        if current is None:
            return None  # below a free-form or scalar field: pydantic-settings parses it (JSON)
        fields = {name.lower(): ann for name, ann in _names(current).items()}
        if part not in fields:
            return i, list(fields)
        direct = [m for kind, m in _models_in(fields[part]) if kind == ""]
        current = direct[0] if direct else None
        if current is None and i + 1 < len(parts):
            return None  # e.g. a dict of groups by name: the names are the operator's
    return None
