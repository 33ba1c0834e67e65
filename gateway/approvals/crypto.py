"""Sealing held model answers: Fernet (AES-128-CBC + HMAC-SHA256, authenticated).

An approval keeps the model's answer so an approved action is released without a second
model call; that answer may hold anything the model said, so it is encrypted at rest (Redis
keeps it in memory, and dumps or replicas may copy it) and opened only for the caller that
caused the approval. Why Fernet: authenticated, versioned tokens with a built-in rotation
story (``MultiFernet``) and no nonce management to get wrong.

Keys: the env var named by ``answer_key_env`` holds one or more comma-separated Fernet keys
(the first encrypts, all decrypt). Without it, a key is generated once into
``<data_dir>/approvals.key`` (mode 0600): fine for one process, but replicas sharing Redis
must share the env key or they cannot open each other's answers.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

log = logging.getLogger("wardgate.approvals")

KEY_FILE = "approvals.key"


class SealError(Exception):
    """A sealed answer cannot be opened (wrong key, or tampered with)."""


class AnswerSealer:
    def __init__(self, keys: list[bytes]) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    @classmethod
    def from_env_or_dir(cls, env_name: str, data_dir: Path) -> AnswerSealer:
        raw = os.environ.get(env_name, "").strip()
        if raw:
            try:
                return cls([k.strip().encode() for k in raw.split(",") if k.strip()])
            except ValueError as exc:
                raise ValueError(f"{env_name} must hold url-safe base64 Fernet keys: {exc}") from exc
        return cls([_dir_key(data_dir)])

    def seal(self, plaintext: bytes) -> bytes:
        return self._fernet.encrypt(plaintext)

    def open(self, token: bytes) -> bytes:
        try:
            return self._fernet.decrypt(token)
        except InvalidToken as exc:
            raise SealError("the held answer cannot be opened with the configured key(s)") from exc


def _dir_key(data_dir: Path) -> bytes:
    path = data_dir / KEY_FILE
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    key = Fernet.generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return path.read_bytes().strip()
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    log.info("generated the approvals answer key in %s", path)
    return key
