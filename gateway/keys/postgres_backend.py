"""Virtual keys shared by every replica through PostgreSQL (``keys.backend: postgres``).

Tables in ``keys.postgres_schema`` (created at first connection, under an advisory lock):

    keys       id text primary key, entry jsonb   (keys.yaml's shape: the hash, never the key)
    keys_meta  one row: version (bumped by every write), imported (keys.yaml imported once)

Same contract as the Redis backend (``redis_backend.py``): every worker keeps the whole key set
in memory (authentication is a local lookup), and reloads it on a ``NOTIFY`` on channel
``<schema>_keys_changed`` (sent in the writing transaction, so delivered at its commit) or when
the version it polls every ``version_check_s`` on its listening connection differs (the safety
net for a lost connection). Writers serialize on the ``keys_meta`` row (``SELECT … FOR UPDATE``).
Admin keys stay in keys.yaml. PostgreSQL down: as for Redis (fail closed at start, last keys
kept later, ``/readyz`` 503 with host:port in both cases).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import asyncpg
import orjson

from gateway.keys.backend import KeysUnavailable
from gateway.keys.shared import KeyEdit, SharedKeys, created_order, read_doc
from gateway.keys.store import KeyFileError, KeyStore

log = logging.getLogger("wardgate.keys")
T = TypeVar("T")
_DOWN = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)
#: Any constant: the advisory lock that serializes the schema creation of replicas starting at once.
_SETUP_LOCK = 0x57475F4B455953


class PostgresKeys(SharedKeys[int]):
    """One worker's view of the shared keys, and its writer (``KeyBackend``)."""

    def __init__(
        self,
        store: KeyStore,
        dsn: str,
        file: Path,
        *,
        schema: str = "wardgate",
        timeout_s: float = 2.0,
        version_check_s: float = 0.5,
    ) -> None:
        if not schema.replace("_", "").isalnum():
            raise ValueError(f"keys.postgres_schema must be letters, digits and _, not {schema!r}")
        super().__init__(store, file, version_check_s)
        self.dsn, self.timeout_s = dsn, timeout_s
        parts = urlsplit(dsn)
        self.where = f"postgresql {parts.hostname or '127.0.0.1'}:{parts.port or 5432}"
        self._keys, self._meta = f'"{schema}".keys', f'"{schema}".keys_meta'
        self._schema, self._channel = schema, f"{schema}_keys_changed"
        self._set_up = False

    @contextlib.asynccontextmanager
    async def _connection(self) -> AsyncIterator[asyncpg.Connection]:
        conn = await asyncpg.connect(self.dsn, timeout=self.timeout_s, command_timeout=self.timeout_s)
        try:
            if not self._set_up:
                await self._setup(conn)
            yield conn
        finally:
            await conn.close()

    async def _setup(self, conn: asyncpg.Connection) -> None:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", _SETUP_LOCK)
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self._schema}"')
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._keys} (id text PRIMARY KEY, entry jsonb NOT NULL)"
            )
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._meta} (one boolean PRIMARY KEY DEFAULT true CHECK (one), "
                "version bigint NOT NULL, imported boolean NOT NULL)"
            )
            await conn.execute(f"INSERT INTO {self._meta} VALUES (true, 0, false) ON CONFLICT DO NOTHING")
        self._set_up = True

    async def _import_file(self, conn: asyncpg.Connection, doc: dict[str, Any]) -> None:
        """Import keys.yaml's virtual keys into an empty backend (once, whoever starts first)."""
        async with conn.transaction():
            if await conn.fetchval(f"SELECT imported FROM {self._meta} FOR UPDATE"):
                return
            entries = [e for e in doc.get("keys") or [] if isinstance(e, dict)]
            await conn.executemany(
                f"INSERT INTO {self._keys} VALUES ($1, $2::jsonb) ON CONFLICT DO NOTHING",
                [(str(e["id"]), orjson.dumps(e).decode()) for e in entries],
            )
            await conn.execute(f"UPDATE {self._meta} SET imported = true, version = version + 1")
            await conn.execute("SELECT pg_notify($1, 'import')", self._channel)
        log.info("keys: imported %d keys from %s into %s", len(entries), self.file, self.where)

    async def _entries(self, conn: asyncpg.Connection) -> tuple[int, dict[str, dict[str, Any]]]:
        version = await conn.fetchval(f"SELECT version FROM {self._meta}")
        rows = await conn.fetch(f"SELECT id, entry::text AS entry FROM {self._keys}")
        return int(version), {r["id"]: orjson.loads(r["entry"]) for r in rows}

    async def reload(self) -> bool:
        """Load every key from PostgreSQL into the store; False (last keys kept) if it cannot."""
        async with self._lock:
            try:
                doc = await asyncio.to_thread(read_doc, self.file)
                async with self._connection() as conn:
                    if not self.loaded:
                        await self._import_file(conn, doc)
                    async with conn.transaction(isolation="repeatable_read", readonly=True):
                        version, entries = await self._entries(conn)
                self._adopt(version, list(entries.values()), doc)
            except _DOWN as exc:
                return self._unreachable(exc)
            except (KeyFileError, ValueError) as exc:
                return self._failed(f"keys refused, last good keys kept: {exc}")
            return True

    async def watch(self) -> None:
        """Follow the backend until cancelled: NOTIFY, and the version as a safety net."""
        changed = asyncio.Event()
        while True:
            try:
                async with self._connection() as conn:
                    await conn.add_listener(self._channel, lambda *_: changed.set())
                    await self.reload()  # after LISTEN: no write between the two is missed
                    while True:
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(changed.wait(), self.version_check_s)
                        if changed.is_set():
                            changed.clear()
                            await self.reload()
                        elif (
                            # A reload that failed while this connection lived (a timeout on a
                            # busy server) is retried too: the version alone would not change.
                            self.last_error is not None
                            or await conn.fetchval(f"SELECT version FROM {self._meta}") != self.version
                        ):
                            await self.reload()
            except _DOWN as exc:
                self._unreachable(exc)
                await asyncio.sleep(self.version_check_s)
            except Exception:  # the follower must survive anything; the next round retries
                log.exception("keys: following %s failed", self.where)
                await asyncio.sleep(self.version_check_s)

    async def edit(self, change: Callable[[dict[str, Any]], T]) -> T:
        """Apply ``change`` to the shared keys in one transaction, notify, load here."""
        try:
            doc = await asyncio.to_thread(read_doc, self.file)
            admin = doc.get("admin_keys") or []
            async with self._connection() as conn:
                if not self.loaded:  # a first write (the CLI) imports keys.yaml first, like a start
                    await self._import_file(conn, doc)
                async with conn.transaction():
                    await conn.execute(f"SELECT version FROM {self._meta} FOR UPDATE")  # one writer at a time
                    _, old = await self._entries(conn)
                    edit = KeyEdit(old, change, admin)
                    if edit.writes or edit.gone:
                        await conn.executemany(
                            f"INSERT INTO {self._keys} VALUES ($1, $2::jsonb) "
                            "ON CONFLICT (id) DO UPDATE SET entry = EXCLUDED.entry",
                            [(k, orjson.dumps(e).decode()) for k, e in edit.writes.items()],
                        )
                        await conn.execute(f"DELETE FROM {self._keys} WHERE id = ANY($1::text[])", edit.gone)
                        await conn.execute(f"UPDATE {self._meta} SET version = version + 1")
                        await conn.execute("SELECT pg_notify($1, 'changed')", self._channel)
        except _DOWN as exc:
            raise KeysUnavailable(
                f"Keys cannot be changed: the keys backend ({self.where}) is unreachable.",
                code="keys_store_unavailable",
            ) from exc
        await self.reload()
        return edit.result

    async def list_entries(self) -> list[dict[str, Any]]:
        """Every virtual key entry in the backend (the CLI's ``list``; hashes included)."""
        async with self._connection() as conn:
            _, entries = await self._entries(conn)
        return sorted(entries.values(), key=created_order)

    def start(self) -> None:
        self._start(self.watch(), "wardgate-keys-postgres")

    async def close(self) -> None:
        await self._stop()
