"""Server-side console sessions: what a signed-in browser holds is a random id, nothing else.

The cookie carries 32 random bytes; the store keys the session by the id's SHA-256, so a dump
of the store (Redis) gives no live cookie. A session records *how* its holder signed in
(``method``, ``subject``): for an admin key, the key's SHA-256 as ``keys.yaml`` keeps it,
never the key. The principal is re-read from that subject on every request
(``gateway/console/auth.py``), so a revoked admin key or a changed role takes effect at once.
Another sign-in method (OIDC) is another ``method`` and resolver; the store does not change.

Expiry: idle (``idle_timeout_s`` since the last request) and absolute (``absolute_timeout_s``
since sign-in), both checked against the injected clock on every load; the store's own TTL
(Redis) only reclaims space.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

#: Seconds since the epoch; injected so tests advance time instead of sleeping.
Clock = Callable[[], float]

#: A load refreshes ``last_seen`` in the store at most this often (not one write per request).
TOUCH_EVERY_S = 15.0


def new_token() -> str:
    return secrets.token_urlsafe(32)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@dataclass(slots=True)
class Session:
    id_hash: str
    #: How its holder signed in: ``admin_key`` (OIDC would be another).
    method: str
    #: What the method re-reads the principal from: the admin key's SHA-256 for ``admin_key``.
    subject: str
    key_id: str
    user: str
    #: The synchronizer token every state change must echo (form field or header).
    csrf: str
    created_at: float
    last_seen: float
    #: Absolute end (``created_at + absolute_timeout_s``).
    ends_at: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Session:
        return cls(**{k: doc[k] for k in cls.__dataclass_fields__})


class SessionStore(ABC):
    """Where sessions live (memory for one process, Redis for several)."""

    @abstractmethod
    async def put(self, session: Session, ttl_s: float) -> None:
        """Create or refresh; the store may forget it after ``ttl_s``."""

    @abstractmethod
    async def get(self, id_hash: str) -> Session | None: ...

    @abstractmethod
    async def delete(self, id_hash: str) -> None: ...

    async def start(self) -> None:  # noqa: B027 (optional hook: memory has nothing to open)
        """Open connections (nothing for memory)."""

    async def close(self) -> None:  # noqa: B027 (optional hook: memory has nothing to close)
        """Close connections (nothing for memory)."""

    async def ping(self) -> str | None:
        """Readiness: raises when the store cannot answer."""
        return None


class MemorySessionStore(SessionStore):
    """One process's sessions (the embedded default; refused with several workers)."""

    def __init__(self, clock: Clock = time.time) -> None:
        self._items: dict[str, tuple[Session, float]] = {}
        self._clock = clock

    async def put(self, session: Session, ttl_s: float) -> None:
        now = self._clock()
        if len(self._items) > 1000:  # drop what expired, so abandoned sessions do not pile up
            self._items = {k: v for k, v in self._items.items() if v[1] > now}
        self._items[session.id_hash] = (Session.from_dict(session.to_dict()), now + ttl_s)

    async def get(self, id_hash: str) -> Session | None:
        item = self._items.get(id_hash)
        if item is None or item[1] <= self._clock():
            return None
        return Session.from_dict(item[0].to_dict())

    async def delete(self, id_hash: str) -> None:
        self._items.pop(id_hash, None)


class SessionManager:
    """Makes, loads (checking both expiries) and ends sessions over a ``SessionStore``."""

    def __init__(self, store: SessionStore, idle_s: float, absolute_s: float, clock: Clock = time.time):
        self.store = store
        self.idle_s = idle_s
        self.absolute_s = absolute_s
        self.clock = clock

    async def begin(self, method: str, subject: str, key_id: str, user: str) -> tuple[str, Session]:
        """A new session: ``(cookie value, session)``. Every sign-in gets a fresh id (no fixation)."""
        token = new_token()
        now = self.clock()
        session = Session(
            id_hash=digest(token),
            method=method,
            subject=subject,
            key_id=key_id,
            user=user,
            csrf=new_token(),
            created_at=now,
            last_seen=now,
            ends_at=now + self.absolute_s,
        )
        await self.store.put(session, self._ttl(session, now))
        return token, session

    async def load(self, token: str | None, *, touch: bool = True) -> Session | None:
        """The live session of this cookie value, or ``None`` (unknown, idle too long, too old).

        ``touch=False``: only check (a live stream's keep-alive is not the reviewer's activity,
        so an inbox left open still ends after the idle timeout)."""
        if not token or len(token) > 128:
            return None
        id_hash = digest(token)
        session = await self.store.get(id_hash)
        if session is None:
            return None
        now = self.clock()
        if now >= session.ends_at or now - session.last_seen >= self.idle_s:
            await self.store.delete(id_hash)
            return None
        if touch and now - session.last_seen >= TOUCH_EVERY_S:
            session.last_seen = now
            await self.store.put(session, self._ttl(session, now))
        return session

    async def end(self, token: str | None) -> None:
        if token and len(token) <= 128:
            await self.store.delete(digest(token))

    def _ttl(self, session: Session, now: float) -> float:
        return max(1.0, min(self.idle_s, session.ends_at - now))
