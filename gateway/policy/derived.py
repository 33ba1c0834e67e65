"""Derived data: one policy package computed once per revision and served as plain data.

Much of what a policy computes depends on the settings alone (each team's merged settings,
lower-cased markers, a regex or glob built from a list): the same value on every call of a
revision. A policy author puts such rules in the package ``wardgate.derived``; when a
revision loads, every engine is handed the set *materialized*:

- the package is evaluated once, without input (regorus, in a worker thread);
- its modules leave the serving set, and the value is added as base data at
  ``data.wardgate.derived`` — the same path, so rules read it unchanged;
- all three engines get the same modules and data, so they decide identically (the ``opa``
  server gets them pushed; an OPA fed by bundles evaluates the package as ordinary Rego,
  with the same results, only slower).

Under ``wardgate policy test`` (and ``with data.wardgate.policy as …`` in a test) the
package is ordinary Rego, so tests see values derived from their own settings.

Because its value is frozen per revision, the package is checked when a revision loads and
refused with ``file:line`` (``PolicyCompileError``) if it could differ per call or cannot be
served as data: it may not read ``input``, may read only ``data.wardgate.<data file>`` and
itself (a rule of another package may read input), may not call a builtin whose value changes
over time, may not define functions (data holds no functions), and its value may hold no
sets (served as JSON, a set would become an array with other semantics).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from gateway.policy.errors import PolicyCompileError, short_error
from gateway.policy.source import packages

DERIVED_PACKAGE = "wardgate.derived"
_DERIVED_ROOT = "derived"  # data.wardgate.<_DERIVED_ROOT>

# Strings and comments, blanked before the checks (a "#" or "input" inside them is text).
_LITERALS = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|#[^\n]*')
_INPUT = re.compile(r"(?<![\w.])input\b")
_DATA = re.compile(r"(?<![\w.])data\b(?:\s*\.\s*(\w+)(?:\s*\.\s*(\w+))?)?")
_FUNCTION_HEAD = re.compile(r"^(?:default\s+)?([A-Za-z_]\w*)\s*\(", re.MULTILINE)
_NONDETERMINISTIC = re.compile(
    r"(?<![\w.])(time\.now_ns|http\.send|rand\.intn|uuid\.rfc4122|uuid\.parse|net\.lookup_ip_addr|opa\.runtime)\b"
)
_QUERY = f"value := data.{DERIVED_PACKAGE}; sets := [path | walk(value, [path, v]); is_set(v)]"


def derived_modules(modules: Mapping[str, str]) -> list[str]:
    """The modules of the derived package (usually none or one)."""
    return sorted(name for name, package in packages(modules).items() if package == DERIVED_PACKAGE)


def materialize(modules: Mapping[str, str], data: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """The serving set: derived modules replaced by their value at ``data.wardgate.derived``.

    A set without a derived package comes back as it is. Blocking (regorus): call it from a
    worker thread. Raises ``PolicyCompileError`` (with ``file:line``) for a package that
    breaks the rules above, or whose evaluation fails.
    """
    names = derived_modules(modules)
    if not names:
        return dict(modules), dict(data)
    stems = set((data.get("wardgate") or {}).keys()) if isinstance(data.get("wardgate"), dict) else set()
    for name in names:
        check_module(name, modules[name], stems)
    value = _evaluate(modules, data, names[0])
    served = {name: text for name, text in modules.items() if name not in names}
    wardgate = dict(data.get("wardgate") or {})
    wardgate[_DERIVED_ROOT] = value
    return served, {**data, "wardgate": wardgate}


def check_module(name: str, text: str, data_files: set[str]) -> None:
    """Refuse a derived module whose value could change per call or cannot be data."""
    code = _LITERALS.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)

    def refuse(pos: int, why: str) -> PolicyCompileError:
        return PolicyCompileError(
            f"package {DERIVED_PACKAGE} {why}",
            location=f"{name}:{code.count(chr(10), 0, pos) + 1}",
            engine="derived",
        )

    if m := _INPUT.search(code):
        raise refuse(m.start(), "may not read input: its value is computed once per revision")
    for m in _DATA.finditer(code):
        root, part = m.group(1), m.group(2)
        if root != "wardgate" or (part not in data_files and part != _DERIVED_ROOT):
            raise refuse(
                m.start(),
                f"may read only data.wardgate.<data file> ({', '.join(sorted(data_files)) or 'none'}) "
                f"and itself, not {m.group(0).replace(' ', '')}",
            )
    if m := _NONDETERMINISTIC.search(code):
        raise refuse(m.start(), f"may not call {m.group(1)}: its value is computed once per revision")
    if m := _FUNCTION_HEAD.search(code):
        raise refuse(m.start(), f"may not define functions ({m.group(1)}): it is served as data")


def _evaluate(modules: Mapping[str, str], data: Mapping[str, Any], first: str) -> Any:
    # Imported here: regorus loads only when a set has a derived package (an opa engine without
    # one never imports it).
    from gateway.policy.regorus_build import build_regorus

    engine = build_regorus(modules, data)
    try:
        raw = engine.eval_query_as_json(_QUERY)
    except RuntimeError as exc:
        raise PolicyCompileError(
            f"package {DERIVED_PACKAGE} failed: {short_error(exc)}", location=f"{first}:1", engine="derived"
        ) from None
    finally:
        del engine  # dropped on this (worker) thread, where it was built
    found = orjson.loads(raw).get("result") or []
    if not found:
        return {}
    bindings = found[0]["bindings"]
    if bindings["sets"]:
        paths = ", ".join(
            "data.wardgate.derived." + ".".join(map(str, path)) for path in bindings["sets"][:3]
        )
        raise PolicyCompileError(
            f"package {DERIVED_PACKAGE} may hold no sets (served as JSON); use arrays: {paths}",
            location=f"{first}:1",
            engine="derived",
        )
    return bindings["value"]
