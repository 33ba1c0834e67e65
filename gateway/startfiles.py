"""Files read once at start: which of them changed on disk since, so a restart is required.

A policy reload swaps Rego modules and their data (``policies/*.yaml`` as ``data.wardgate.*``),
but some of those files also configure components built once at start: ``models.yaml`` (the
catalog and the router's upstream sessions), ``limits.yaml`` and ``pricing.yaml`` (the limits
engine), ``redaction.yaml`` (the recognizers, built off the event loop for ~0.1 s) and
``approvals.yaml`` (groups, webhooks, stores). Reloading them in place is not done: a call in
flight would meet two versions. Instead each component registers the file it read here, with
a digest of its bytes at that moment, and a reload (or ``/readyz``) names every one whose bytes
differ now: the log line, ``GET /admin/policies`` and ``/readyz`` say "restart required" for
that file instead of letting "changed: models.yaml" suggest it was applied.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


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

    def add(self, path: Path) -> None:
        """Remember ``path`` as read now (call it right after reading the file)."""
        self._files[path.name] = (path, _digest(path))

    def names(self) -> list[str]:
        return sorted(self._files)

    def changed(self) -> list[str]:
        """Names of the files whose bytes differ from the version read at start (a stat + read each)."""
        return sorted(name for name, (path, seen) in self._files.items() if _digest(path) != seen)
