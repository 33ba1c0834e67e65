"""Editing ``policies/keys.yaml`` safely: the one writer the CLI and the admin API share.

keys.yaml is the single source of truth for virtual keys. Several writers may touch it at
once (``wardgate keys create``, each worker's admin API, requests in one worker), so every
edit is a read-modify-write under an exclusive ``flock`` on a sidecar lock file
(``.keys.yaml.lock``: the file itself is replaced, so its own inode cannot carry the lock;
``flock`` locks conflict across processes *and* across file descriptors of one process). The
new text goes to a temp file in the same directory, is fsynced and ``os.replace``d over the
old one, so a reader (the workers' reloaders) sees the old file or the new one, never half.

PyYAML drops comments; the leading comment block (the file's header) is kept as written.
Comments inside the entries are lost on the first API or CLI edit.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import yaml

from gateway.keys.store import parse_key_file

T = TypeVar("T")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock = path.with_name("." + path.name + ".lock")
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _header(text: str) -> str:
    """The comment lines (and blank lines) before the first YAML content."""
    lines = []
    for line in text.splitlines(keepends=True):
        if line.strip() and not line.lstrip().startswith("#"):
            break
        lines.append(line)
    return "".join(lines)


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix="." + path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, os.stat(path).st_mode & 0o777)  # keep the file's permissions
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a crash
    finally:
        os.close(dir_fd)


def edit_keys(path: Path, change: Callable[[dict[str, Any]], T]) -> T:
    """Apply ``change`` to the parsed document under the lock and write the result atomically.

    ``change`` mutates the document in place and may raise to abort (nothing is written). The
    file is refused (``KeyFileError``) when it is malformed before the edit, so an edit never
    builds on a broken hand edit, and when the result would not load.
    """
    with _locked(path):
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        parse_key_file(text)  # refuses a malformed file before anything builds on it
        doc = yaml.safe_load(text) or {}
        result = change(doc)
        new_text = _header(text) + yaml.safe_dump(
            doc, sort_keys=False, default_flow_style=None, allow_unicode=True
        )
        parse_key_file(new_text)
        _write_atomic(path, new_text)
        return result


def add_key(path: Path, entry: dict[str, Any]) -> None:
    """Append one virtual key entry; refuses an id already used by any key (``KeyIdTaken``)."""

    def change(doc: dict[str, Any]) -> None:
        if key_id_taken(doc, str(entry["id"])):
            raise KeyIdTaken(str(entry["id"]))
        keys = doc.get("keys")
        doc["keys"] = [*(keys or []), entry]

    edit_keys(path, change)


def key_id_taken(doc: dict[str, Any], key_id: str) -> bool:
    """Ids are unique across agent and admin keys, revoked ones included (an id is never reused)."""
    return any(
        isinstance(e, dict) and str(e.get("id")) == key_id
        for name in ("keys", "admin_keys")
        for e in (doc.get(name) or [])
    )


class KeyIdTaken(ValueError):
    """A key with this id exists already (maybe revoked: ids are not reused)."""
