"""Files read once at start: which of them changed on disk since, so a restart is required.

A policy reload swaps Rego modules and their data (``policies/*.yaml`` as ``data.wardgate.*``),
but some of those files also configure components built at start: ``models.yaml`` (the
catalog and the router's upstream sessions), ``limits.yaml`` and ``pricing.yaml`` (the limits
engine), ``redaction.yaml`` (the recognizers, built off the event loop for ~0.1 s) and
``approvals.yaml`` (groups, webhooks, stores). Each component registers the file it read
here, with a digest of its bytes at that moment, and each policy reload (``apply_changes``)
looks at every one whose bytes differ now:

* a file registered with an ``apply`` function (``limits.yaml``: the limit rules, read once
  per call, so a call keeps the version it started with) is parsed and validated by it and
  swapped in with one assignment; a file it refuses leaves the running version in place and
  is reported as refused, with the reason (``/readyz`` degraded), until it is fixed;
* any other is named "restart required" (the log line, ``GET /admin/policies``, ``/readyz``)
  instead of letting "changed: models.yaml" suggest it was applied.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

#: Parses, validates and swaps in a changed file; raises (any exception, its message shown) to refuse it.
Apply = Callable[[], None]


@dataclass(slots=True)
class FileChanges:
    """What one reload did with the start-time files that changed on disk."""

    applied: list[str] = field(default_factory=list)
    restart_required: list[str] = field(default_factory=list)
    #: ``file: reason`` for each changed file its component refused (the running version stays).
    refused: list[str] = field(default_factory=list)


def _digest(path: Path) -> str | None:
    """sha256 of the file's bytes; ``None`` when it does not exist (or cannot be read)."""
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class StartFiles:
    """The files the running gateway read at start, by name, with the digest of that version."""

    def __init__(self) -> None:
        self._files: dict[str, tuple[Path, str | None]] = {}
        self._apply: dict[str, Apply] = {}
        self._check: dict[str, Apply] = {}

    def add(self, path: Path, apply: Apply | None = None, *, check: Apply | None = None) -> None:
        """Remember ``path`` as read now (call it right after reading the file); ``apply``
        makes it reloadable (see the module docstring). ``check`` (for a file that is not)
        reads a changed version without applying it, so its problems (a key a restart would
        refuse, a deployment it would drop) are told at the reload, not at the restart."""
        self._files[path.name] = (path, _digest(path))
        if apply is not None:
            self._apply[path.name] = apply
        if check is not None:
            self._check[path.name] = check

    def reloadable(self) -> list[str]:
        return sorted(self._apply)

    def apply_changes(self) -> FileChanges:
        """Apply what can be applied, name the rest (blocking: call it off the event loop)."""
        out = FileChanges()
        for name in self.changed():
            apply = self._apply.get(name)
            if apply is None:
                out.restart_required.append(name)
                check = self._check.get(name)
                try:
                    if check is not None:
                        check()
                except Exception as exc:  # the restart would refuse this version: say so now
                    first = (str(exc).splitlines() or [type(exc).__name__])[0]
                    out.refused.append(f"{name}: {first} (a restart would refuse it)")
                continue
            path = self._files[name][0]
            digest = _digest(path)
            try:
                apply()
            except Exception as exc:  # refused: the running version stays; the next reload retries
                first = (str(exc).splitlines() or [type(exc).__name__])[0]
                out.refused.append(f"{name}: {first}")
                continue
            self._files[name] = (path, digest)
            out.applied.append(name)
        return out

    def names(self) -> list[str]:
        return sorted(self._files)

    def changed(self) -> list[str]:
        """Names of the files whose bytes differ from the version read at start (a stat + read each)."""
        return sorted(name for name, (path, seen) in self._files.items() if _digest(path) != seen)
