"""What the admin API and the CLI write virtual keys through, whatever the backend.

``KeyBackend`` is implemented by ``reload.KeyReloader`` (keys.yaml, one replica) and by
``redis_backend.RedisKeys`` (shared by every replica). A write is a read-modify-write of the
keys document (keys.yaml's shape: ``keys`` and ``admin_keys`` lists) through ``edit``: the
API's changes (create, revoke, their undo) are written once and run against either backend.
A backend that cannot be written raises ``KeysUnavailable`` (503, OpenAI-shaped), never a
bare ``OSError``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from gateway.errors import ServiceUnavailable
from gateway.keys.keyfile import KeyIdTaken, key_id_taken

T = TypeVar("T")


class KeysUnavailable(ServiceUnavailable):
    """The keys backend cannot be written now (unwritable file, Redis down)."""

    code = "keys_store_unavailable"


class KeyBackend(Protocol):
    @property
    def where(self) -> str:
        """Where the keys live, for messages (a path, or ``redis host:port``)."""
        ...

    async def edit(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply ``change`` to the keys document atomically, then load the result here."""
        ...

    async def reload(self) -> bool:
        """Load the backend's keys into this worker's store now."""
        ...


def adding(entry: dict[str, Any]) -> Callable[[dict[str, Any]], None]:
    """The change that appends one virtual key; refuses an id already used (``KeyIdTaken``)."""

    def change(doc: dict[str, Any]) -> None:
        if key_id_taken(doc, str(entry["id"])):
            raise KeyIdTaken(str(entry["id"]))
        doc["keys"] = [*(doc.get("keys") or []), entry]

    return change
