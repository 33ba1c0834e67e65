"""Validate the whole configuration before anything starts: settings, env, data files, Rego.

``wardgate serve`` runs this first and refuses to start on any problem; ``wardgate config
check`` runs it alone and lists every problem found. Each problem is one line that names
where it is (``file:line:column`` for YAML, the file and the dotted key path for an unknown
key, the variable for the environment) and what to do, so an operator fixes a typo in one read
instead of finding out in production that ``limits: {backnd: redis}`` ran on in-memory limits.

Programmatic construction (``Settings(...)``, the test harness) is left as pydantic does it:
the strictness is about what an operator writes, and it is checked here, at the door.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from gateway.registry import section
from gateway.settings import MOVED_KEYS, CoreSettings, Settings
from gateway.strict import UnknownKey, default_env_names, unknown_env, unknown_keys
from gateway.yamlfile import load_yaml

DEFAULT_CONFIG = Path("wardgate.yaml")
#: What Kubernetes injects for a Service named ``wardgate…`` when service links are on.
_SERVICE_LINK = re.compile(r"^WARDGATE\w*_(SERVICE_HOST|SERVICE_PORT\w*|PORT(_\d+_(TCP|UDP|SCTP)\w*)?)$")


class ConfigError(Exception):
    """The configuration cannot start a gateway; ``problems`` says each reason in one line."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def config_path(explicit: Path | None = None, environ: Mapping[str, str] = os.environ) -> tuple[Path, bool]:
    """The settings file and whether it was named (``--config`` or ``WARDGATE_CONFIG``).

    A named file must exist; the default ``wardgate.yaml`` may be absent (embedded defaults).
    """
    if explicit is not None:
        return explicit, True
    named = environ.get("WARDGATE_CONFIG")
    return (Path(named), True) if named else (DEFAULT_CONFIG, False)


def _pydantic_lines(where: str, exc: ValidationError) -> list[str]:
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        lines.append(f"{where}: {loc}: {err['msg']}")
    return lines


def _unknown_in_settings(doc: dict[str, Any], model: type[BaseModel]) -> list[UnknownKey]:
    """Unknown keys of wardgate.yaml; a renamed key (``audit.metrics``) is checked at its new place."""
    doc = {k: (dict(v) if isinstance(v, dict) else v) for k, v in doc.items()}
    found: list[UnknownKey] = []
    for (old, key), new in MOVED_KEYS.items():
        old_section = doc.get(old)
        if isinstance(old_section, dict) and key in old_section:
            moved = old_section.pop(key)
            target = model.model_fields.get(new)
            if target is not None and isinstance(target.annotation, type):
                sub = (
                    target.annotation.model_fields.get(key)
                    if issubclass(target.annotation, BaseModel)
                    else None
                )
                if (
                    sub is not None
                    and isinstance(sub.annotation, type)
                    and issubclass(sub.annotation, BaseModel)
                ):
                    found += unknown_keys(moved, sub.annotation, f"{old}.{key}")
    return unknown_keys(doc, model) + found


def _moved_env(environ: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The env with renamed sections spelled the new way, and new name → the variable as set."""
    renamed: dict[str, str] = {}
    out: dict[str, str] = {}
    for var, value in environ.items():
        name = var
        for (old, key), new in MOVED_KEYS.items():
            old_prefix = f"WARDGATE_{old}__{key}".upper()
            if var.upper() == old_prefix or var.upper().startswith(old_prefix + "__"):
                name = f"WARDGATE_{new}__{key}".upper() + var[len(old_prefix) :]
                renamed[name] = var
        out[name] = value
    return out, renamed


def _env_names(doc: Any) -> Iterator[str]:
    """Every ``*_env`` value in a document: variables the configuration names (secrets)."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if str(key).endswith("_env") and isinstance(value, str):
                yield value
            else:
                yield from _env_names(value)
    elif isinstance(doc, list):
        for item in doc:
            yield from _env_names(item)


def load_settings(
    explicit: Path | None = None,
    environ: Mapping[str, str] = os.environ,
    settings_cls: type[CoreSettings] = Settings,
) -> CoreSettings:
    """The settings, or ``ConfigError`` listing every problem of the file and the environment."""
    settings, problems = _read_settings(explicit, environ, settings_cls)
    if problems or settings is None:
        raise ConfigError(problems)
    return settings


def settings_for_command(explicit: Path | None = None) -> CoreSettings:
    """The settings a CLI command (``keys``, ``audit``) acts on, checked as ``serve`` checks them.

    A typo or a missing named file must not send ``wardgate keys create`` to a default backend
    (``./policies/keys.yaml`` instead of the shared store): every problem is printed, one line
    each, and the command exits 2 before touching anything. ``WARDGATE_CONFIG`` is set to the
    file used, for the code the command runs next."""
    try:
        settings = load_settings(explicit)
    except ConfigError as exc:
        sys.stderr.write("wardgate: the configuration has errors:\n")
        sys.stderr.write("".join(f"  {problem}\n" for problem in exc.problems))
        raise SystemExit(2) from None
    if explicit is not None:
        os.environ["WARDGATE_CONFIG"] = str(explicit)
    return settings


def _read_settings(
    explicit: Path | None, environ: Mapping[str, str], settings_cls: type[CoreSettings]
) -> tuple[CoreSettings | None, list[str]]:
    """The settings pydantic builds (None if it cannot) and every problem found on the way."""
    path, named = config_path(explicit, environ)
    if not path.exists():
        if named:
            return None, [f"{path}: config file not found (named by --config or WARDGATE_CONFIG)"]
        doc: Any = {}
    else:
        try:
            doc = load_yaml(path, ValueError) or {}
        except ValueError as exc:
            return None, [str(exc)]
    if not isinstance(doc, dict):
        return None, [f"{path}: expected a mapping of sections at the top level"]
    problems = [f"{path}: {p}" for p in _unknown_in_settings(doc, settings_cls)]
    policies = Path(environ.get("WARDGATE_POLICIES_DIR") or doc.get("policies_dir") or "policies")
    allowed = (
        set(_env_names(doc)) | set(_env_names(_policies_docs(policies))) | default_env_names(settings_cls)
    )
    moved, renamed = _moved_env(environ)
    for p in unknown_env(moved, settings_cls, allowed):
        shown = renamed.get(p.path, p.path)
        hint = f" (did you mean {p.suggestion}?)" if p.suggestion else ""
        if _SERVICE_LINK.match(shown):
            hint += " (a Kubernetes service link? set enableServiceLinks: false on the pod)"
        problems.append(f"environment: unknown variable {shown}{hint}")
    settings: CoreSettings | None = None
    previous = os.environ.get("WARDGATE_CONFIG")
    os.environ["WARDGATE_CONFIG"] = str(path)
    try:
        settings = settings_cls()
    except ValidationError as exc:
        problems += _pydantic_lines(str(path), exc)
    finally:
        if previous is None:
            os.environ.pop("WARDGATE_CONFIG", None)
        else:
            os.environ["WARDGATE_CONFIG"] = previous
    return settings, problems


def _policies_docs(policies: Path) -> list[Any]:
    docs: list[Any] = []
    if policies.is_dir():
        for path in sorted(policies.glob("*.y*ml")):
            try:
                docs.append(load_yaml(path, ValueError))
            except ValueError:
                continue  # reported by its own loader
    return docs


def data_problems(settings: CoreSettings, rego: bool = True, quiet: bool = False) -> list[str]:
    """Every problem of the files under ``policies_dir`` (and ``rego_dir``), loaded by the same
    loaders the components use at start (``quiet``: without their warnings, which each worker
    logs again when it starts)."""
    if quiet:
        loaders = logging.getLogger("wardgate")
        level = loaders.level
        loaders.setLevel(logging.ERROR)
        try:
            return data_problems(settings, rego)
        finally:
            loaders.setLevel(level)
    from gateway.approvals.component import load_settings as approvals_file
    from gateway.approvals.config import ApprovalSettings
    from gateway.keys.store import KeyStore
    from gateway.limits.config import LimitsSettings
    from gateway.limits.pricing import PriceBook
    from gateway.limits.rules import LimitRules
    from gateway.mcp.config import McpSettings, load_servers
    from gateway.models import ModelCatalog
    from gateway.redaction.component import load_settings as redaction_file
    from gateway.redaction.config import RedactionSettings

    policies = settings.policies_dir
    limits = section(settings, "limits", LimitsSettings)
    mcp_file = policies / section(settings, "mcp", McpSettings).servers_file
    checks: list[tuple[Path, Callable[[], object]]] = [
        (policies / "keys.yaml", lambda: KeyStore.load(policies / "keys.yaml")),
        (policies / "models.yaml", lambda: ModelCatalog.load(policies / "models.yaml")),
        (policies / limits.limits_file, lambda: LimitRules.load(policies / limits.limits_file)),
        (policies / limits.pricing_file, lambda: PriceBook.load(policies / limits.pricing_file)),
        (policies, lambda: approvals_file(section(settings, "approvals", ApprovalSettings), policies)),
        (policies, lambda: redaction_file(section(settings, "redaction", RedactionSettings), policies)),
        (mcp_file, lambda: load_servers(mcp_file)),
    ]
    if rego:
        checks.append((settings.rego_dir, lambda: _rego_problems(settings)))
    problems: list[str] = []
    if not policies.is_dir():  # every file below would read as absent: no models, no keys
        problems.append(
            f"{policies}: policies_dir does not exist (models.yaml, keys.yaml and the policies are read from it)"
        )
    for where, run in checks:
        try:
            found = run()
        except ValidationError as exc:
            problems += _pydantic_lines(str(where), exc)
        except (ValueError, OSError) as exc:
            text = str(exc)
            problems.append(text if text.startswith(str(where)) else f"{where}: {text}")
        else:
            if isinstance(found, list):
                problems += found
    return [p for p in dict.fromkeys(problems) if not _reported_twice(p, problems)]


_DATA_YAML_ERROR = re.compile(r"^(?P<file>[^:]+):\d+: invalid YAML: ")


def _reported_twice(problem: str, problems: list[str]) -> bool:
    """The policy set's line for a data file that is not YAML, when the file's own loader
    already said so (``path:line:column: not valid YAML``): one problem, told once."""
    found = _DATA_YAML_ERROR.match(problem)
    if found is None:
        return False
    name = Path(found["file"]).name
    return any(
        other != problem and "not valid YAML" in other and Path(other.split(":", 1)[0]).name == name
        for other in problems
    )


def deployment_problems(
    settings: CoreSettings, workers: int | None = None, environ: Mapping[str, str] = os.environ
) -> list[str]:
    """State that must be shared and is not: memory backends under several workers, a Redis
    approvals backend without the sealing key every replica must share."""
    from gateway.approvals.config import ApprovalSettings
    from gateway.console.config import ConsoleSettings, session_store_of
    from gateway.limits.config import LimitsSettings

    workers = workers or settings.server.workers
    limits = section(settings, "limits", LimitsSettings)
    approvals = section(settings, "approvals", ApprovalSettings)
    console = section(settings, "console", ConsoleSettings)
    problems: list[str] = []
    if workers > 1 and not settings.server.allow_per_process_state:
        fix = (
            "set {name}.backend: redis (and {name}.redis_url), or server.allow_per_process_state: true "
            "to accept per-worker state (tests, demos)"
        )
        if limits.enabled and limits.backend == "memory":
            problems.append(
                f"limits.backend is memory with {workers} workers: each worker would count its own "
                f"limits and budgets (a 3/min limit would admit {3 * workers}); " + fix.format(name="limits")
            )
        if approvals.enabled and approvals.backend == "memory":
            problems.append(
                f"approvals.backend is memory with {workers} workers: an approval held by one worker "
                "is invisible to the others (approve answers 404); " + fix.format(name="approvals")
            )
        if console.enabled and session_store_of(console, approvals)[0] == "memory":
            problems.append(
                f"console.session_backend is memory with {workers} workers: a console session made "
                "on one worker is unknown to the others (the reviewer is sent back to sign in); set "
                "console.session_backend: redis (and console.redis_url; with approvals.backend: redis it is "
                "the default), console.enabled: false, or server.allow_per_process_state: true"
            )
    if approvals.enabled and approvals.backend == "redis" and not environ.get(approvals.answer_key_env):
        problems.append(
            f"approvals.backend is redis but {approvals.answer_key_env} is unset: every replica must "
            "seal held answers with the same key; set it to one Fernet key on all of them "
            "(python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
        )
    return problems


def _rego_problems(settings: CoreSettings) -> list[str]:
    """Compile errors of the policy set (regorus, as the embedded engine runs it)."""
    from gateway.policy.config import PolicySettings
    from gateway.policy.source import PolicySourceError, load_policy_set
    from gateway.policy.testing import check

    if not section(settings, "policy", PolicySettings).enabled:
        return []
    try:
        policy_set = load_policy_set(settings.rego_dir, settings.policies_dir)
    except PolicySourceError as exc:
        return [str(exc)]
    report = check(policy_set, engines=["regorus"], run_tests=False)
    return [str(e) for e in report.compile_errors]


def check_all(explicit: Path | None = None, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Every problem found (empty: the configuration would start)."""
    settings, problems = _read_settings(explicit, environ, Settings)
    if settings is None:
        return problems
    return problems + deployment_problems(settings, environ=environ) + data_problems(settings)
