"""Hot reload: read, check and swap policy sets without a restart.

A reload reads ``rego/`` and ``policies/``, and — in worker threads, off the hot path, with a
short GIL switch interval while it runs so live traffic does not starve them —
compiles the set under the real OPA engine (the strictness reference) and regorus and runs
its ``*_test.rego``. Only a set that compiles and passes its tests is handed to the engine,
whose ``load`` swaps it in with one assignment; anything else is refused, logged with
``file:line``, kept as ``last_error``, and the last good revision stays active. Calls in
flight keep the snapshot they took, so each call phase is decided by exactly one revision.

Triggers: the file watcher (``watch``, watchfiles' ``awatch``, debounced) and
``POST /admin/policies/reload``. Reloads are serialised by a lock.

A revision becomes active only once its audit event is stored (``on_change`` returned): a
refused record leaves the active revision in place and raises ``AuditUnavailable`` (the API
answers 503). An admin's reload that finds nothing new is recorded too ("unchanged"); refusals
are recorded when the audit log can take them.

Files of ``policies/`` that components read at start (``models.yaml``, ``limits.yaml``,
``pricing.yaml``, ``redaction.yaml``, ``approvals.yaml``: see ``gateway/startfiles.py``) are
policy data too. Every reload also hands those changed since to their components: a
reloadable one (``limits.yaml``) is validated and swapped in (``applied_files``) or refused
with the reason (``refused_files``, the running version stays, ``/readyz`` degraded); the
others are named ``restart_required`` (log, ``GET /admin/policies``, ``/readyz``), so
"changed: models.yaml" never reads as applied.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchfiles import Change, awatch

from gateway.errors import AuditUnavailable, GatewayError
from gateway.gil import brisk_gil_handoff
from gateway.policy.engines.base import PolicyEngine
from gateway.policy.errors import PolicyCompileError
from gateway.policy.metrics import PolicyMetrics
from gateway.policy.source import DATA_SUFFIXES, PolicySet, PolicySourceError, load_policy_set
from gateway.policy.testing import CheckReport, check
from gateway.startfiles import FileChanges, StartFiles

log = logging.getLogger("wardgate.policy")


class PolicyRejected(Exception):
    """A policy set that must not become active; ``errors`` are ``file:line: message`` lines."""

    def __init__(self, errors: list[str], report: CheckReport | None = None) -> None:
        super().__init__("; ".join(errors) or "policy set rejected")
        self.errors = errors
        self.report = report


@dataclass(slots=True)
class ReloadResult:
    result: str  # "loaded" | "unchanged" | "refused"
    revision: str | None
    errors: list[str] = field(default_factory=list)
    tests: dict[str, Any] | None = None
    #: Files read once at start that changed since: applied only by a restart.
    restart_required: list[str] = field(default_factory=list)
    #: Start-time files this reload validated and swapped in, and those it refused (``file: why``).
    applied_files: list[str] = field(default_factory=list)
    refused_files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "result": self.result,
            "revision": self.revision,
            "errors": self.errors,
            "tests": self.tests,
            "restart_required": self.restart_required,
            "applied_files": self.applied_files,
            "refused_files": self.refused_files,
        }


#: Reports of sets that passed, by (revision, run_tests), newest last. A revision is a hash of
#: every module, test and data file, and the tests evaluate without input, so the same
#: revision compiles and tests the same: a process that starts several gateways on one policy
#: tree (the test suite starts hundreds; an embedder) checks it once (~0.3 s of CPU, both
#: engines). Only passing reports are kept: a refused set is checked again at every load.
_PASSED: dict[tuple[str, bool], CheckReport] = {}
_PASSED_MAX = 8
_PASSED_LOCK = threading.Lock()  # gateways of one process may load at once (worker threads)


def checked(policy_set: PolicySet, run_tests: bool) -> CheckReport:
    """``check(policy_set)``, or the report of the same revision that passed in this process."""
    key = (policy_set.revision, run_tests)
    with _PASSED_LOCK:
        report = _PASSED.get(key)
    if report is None:
        report = check(policy_set, run_tests=run_tests)
        if report.ok:
            with _PASSED_LOCK:
                _PASSED[key] = report
                while len(_PASSED) > _PASSED_MAX:
                    del _PASSED[next(iter(_PASSED))]
    return report


class PolicyManager:
    def __init__(
        self,
        engine: PolicyEngine,
        rego_dir: Path,
        policies_dir: Path,
        *,
        metrics: PolicyMetrics | None = None,
        run_tests: bool = True,
        on_change: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
        start_files: StartFiles | None = None,
    ) -> None:
        self.engine = engine
        self.rego_dir = Path(rego_dir)
        self.policies_dir = Path(policies_dir)
        self.metrics = metrics
        self.run_tests = run_tests
        self.active: PolicySet | None = None
        self.tests: dict[str, Any] | None = None
        self.last_error: dict[str, Any] | None = None
        self._lock = asyncio.Lock()
        self._on_change = on_change
        self.start_files = start_files or StartFiles()
        #: Files read once at start that differed from that version at the last reload.
        self.restart_required: list[str] = []
        #: Changed start-time files their component refused at the last reload (``file: why``).
        self.refused_files: list[str] = []

    async def reload(
        self, *, reason: str = "manual", force: bool = False, actor: str | None = None
    ) -> ReloadResult:
        """Load the files on disk if they differ from the active set and pass their checks.

        A load (before it takes effect), an admin's unchanged reload and a refusal are reported
        to ``on_change`` (the audit log), with ``actor``. Raises ``AuditUnavailable`` when a
        load or an admin's reload cannot be recorded: then nothing changed.
        """
        result = await self._reload(reason, force, actor)
        files = await self._check_start_files(reason)
        result.restart_required = files.restart_required
        result.applied_files, result.refused_files = files.applied, files.refused
        if result.result == "refused":
            try:
                await self._record(result, reason, actor)
            except Exception:  # a refusal changes nothing: it is logged either way
                log.exception("could not record the policy refusal of revision %s", result.revision)
        return result

    async def _check_start_files(self, reason: str) -> FileChanges:
        """Apply the start-time files that changed on disk and can be; name (and log) the rest."""
        files = await asyncio.to_thread(self.start_files.apply_changes)
        for name in files.applied:
            log.info("%s reloaded (%s): calls from now on use it", name, reason)
        for line in files.refused:
            log.error("%s refused (%s); the running version stays", line, reason)
        changed = files.restart_required
        for name in changed:
            log.warning(
                "%s changed on disk (%s) but is read only at start: restart required to apply it; "
                "the running gateway keeps the version it started with (policy data "
                "data.wardgate.%s has the new one)",
                name,
                reason,
                Path(name).stem,
            )
        if self.restart_required and not changed:
            log.info("start-time files back to the running version: no restart required")
        self.restart_required = changed
        self.refused_files = files.refused
        return files

    async def _record(self, result: ReloadResult, reason: str, actor: str | None) -> None:
        if self._on_change is None:
            return
        payload = {
            "result": result.result,
            "revision": result.revision,
            "reason": reason,
            "actor": actor,
            "errors": result.errors,
            "engine": self.engine.name,
        }
        try:
            await self._on_change(payload)
        except GatewayError:
            raise
        except Exception as exc:
            raise AuditUnavailable(
                f"The audit log could not record the policy reload: {type(exc).__name__}"
            ) from exc

    async def _reload(self, reason: str, force: bool, actor: str | None = None) -> ReloadResult:
        """One reload at a time, with brisk GIL hand-offs to its worker threads."""
        async with self._lock:
            with brisk_gil_handoff():
                return await self._load(reason, force, actor)

    async def _load(self, reason: str, force: bool, actor: str | None = None) -> ReloadResult:
        try:
            policy_set = await asyncio.to_thread(load_policy_set, self.rego_dir, self.policies_dir)
            if not force and self.active is not None and policy_set.revision == self.active.revision:
                self._count("unchanged")
                self.last_error = None  # the files on disk are the active revision again
                unchanged = ReloadResult("unchanged", policy_set.revision)
                if actor is not None:  # an admin asked: the request is an admin action, recorded
                    await self._record(unchanged, reason, actor)
                return unchanged
            report = await asyncio.to_thread(checked, policy_set, self.run_tests)
            if not report.ok:
                raise PolicyRejected(report.errors(), report)
            try:  # recorded before it takes effect: an unrecorded revision never decides a call
                await self._record(ReloadResult("loaded", policy_set.revision), reason, actor)
            except AuditUnavailable as exc:
                self.last_error = {
                    "at": time.time(),
                    "reason": reason,
                    "tests": None,
                    "errors": [f"revision {policy_set.revision} not loaded: {exc.message}"],
                }
                log.error(
                    "policy revision %s not loaded (%s): the audit log refused its record",
                    policy_set.revision,
                    reason,
                )
                raise
            await self.engine.load(policy_set.modules, policy_set.data, revision=policy_set.revision)
        except (PolicySourceError, PolicyCompileError, PolicyRejected) as exc:
            return self._refused(exc, reason)
        self.active = policy_set
        self.tests = report.summary()
        self.last_error = None
        self._count("loaded")
        if self.metrics is not None:
            self.metrics.loaded_at.set(policy_set.loaded_at)
        log.info(
            "policy revision %s active (%s; %d modules, %d/%d tests passed)",
            policy_set.revision,
            reason,
            len(policy_set.modules),
            self.tests["passed"],
            self.tests["tests"],
        )
        return ReloadResult("loaded", policy_set.revision, tests=self.tests)

    def _refused(self, exc: Exception, reason: str) -> ReloadResult:
        errors = exc.errors if isinstance(exc, PolicyRejected) else [str(exc)]
        tests = exc.report.summary() if isinstance(exc, PolicyRejected) and exc.report else None
        self.last_error = {"at": time.time(), "reason": reason, "errors": errors, "tests": tests}
        self._count("refused")
        for line in errors:
            log.error("policy set refused (%s); keeping revision %s: %s", reason, self.engine.revision, line)
        return ReloadResult("refused", self.engine.revision, errors=errors, tests=tests)

    def _count(self, result: str) -> None:
        if self.metrics is not None:
            self.metrics.reloads.labels(result).inc()

    def status(self) -> dict[str, Any]:
        active = self.active
        return {
            "engine": self.engine.name,
            "revision": self.engine.revision,
            "loaded_at": active.loaded_at if active else None,
            "modules": sorted(active.modules) if active else [],
            "tests": sorted(active.tests) if active else [],
            "data_files": list(active.data_files) if active else [],
            "test_results": self.tests,
            "last_error": self.last_error,
            "start_files": self.start_files.names(),
            "restart_required": self.restart_required,
            "reloadable_files": self.start_files.reloadable(),
            "refused_files": self.refused_files,
        }

    def degraded(self) -> str | None:
        """``/readyz``'s word on a refused reload or a file needing a restart (``None``: none)."""
        problems = []
        if self.last_error is not None:
            first = ((self.last_error.get("errors") or ["refused"])[0].splitlines() or ["refused"])[0]
            problems.append(f"reload refused ({first}), revision {self.engine.revision} active")
        for line in self.refused_files:
            problems.append(f"{line}, running version kept")
        if self.restart_required:
            problems.append("restart required to apply " + ", ".join(self.restart_required))
        return "degraded: " + "; ".join(problems) if problems else None

    async def watch(self, debounce_ms: int = 300, stop: asyncio.Event | None = None) -> None:
        """Reload whenever a policy or data file changes (until cancelled or ``stop`` is set)."""
        paths = [p for p in (self.rego_dir, self.policies_dir) if p.is_dir()]
        if not paths:
            return
        async for changes in awatch(
            *paths, debounce=debounce_ms, stop_event=stop, watch_filter=_policy_file, recursive=True
        ):
            names = sorted({Path(p).name for _, p in changes})
            try:
                await self.reload(reason="changed: " + ", ".join(names[:5]))
            except AuditUnavailable:  # logged, kept as last_error; the next change or an admin retries
                continue


def _policy_file(change: Change, path: str) -> bool:
    name = Path(path).name
    return not name.startswith(".") and (name.endswith(".rego") or name.endswith(DATA_SUFFIXES))
