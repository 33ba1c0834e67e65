"""Settings of the web console (the ``console:`` section; see docs/console.md)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

_DEFAULT_REDIS = "redis://127.0.0.1:6379/0"


class ConsoleSettings(BaseModel):
    #: Serve the console under ``/console``. Its pages need an admin key to sign in, exactly
    #: like the admin API they sit beside.
    enabled: bool = True
    #: Where sessions live: ``memory`` (one process) or ``redis`` (several workers or replicas:
    #: a session made on one must be known to the others). ``auto``: ``redis`` when the
    #: approval queue is on Redis (its ``redis_url`` and ``key_prefix`` unless set here), else
    #: ``memory``: a deployment that shares approvals shares sessions without a new setting.
    session_backend: Literal["auto", "memory", "redis"] = "auto"
    redis_url: str | None = None
    key_prefix: str | None = None
    #: A session unused this long ends (the reviewer signs in again).
    idle_timeout_s: float = Field(default=30 * 60.0, gt=0)
    #: A session ends this long after sign-in, however busy.
    absolute_timeout_s: float = Field(default=12 * 3600.0, gt=0)
    #: The session cookie's ``Secure`` flag: ``auto`` sets it when the request came over TLS
    #: (directly, or through a proxy trusted by ``server.forwarded_allow_ips``).
    cookie_secure: Literal["auto", "always", "never"] = "auto"


def session_store_of(console: ConsoleSettings, approvals: Any) -> tuple[str, str, str]:
    """``(backend, redis_url, key_prefix)`` the sessions use, ``auto`` resolved against the
    ``approvals`` section (its ``enabled``, ``backend``, ``redis_url``, ``key_prefix``)."""
    on_redis = bool(getattr(approvals, "enabled", False)) and getattr(approvals, "backend", "") == "redis"
    backend = console.session_backend
    if backend == "auto":
        backend = "redis" if on_redis else "memory"
    url = console.redis_url or (getattr(approvals, "redis_url", None) if on_redis else None) or _DEFAULT_REDIS
    prefix = console.key_prefix or (getattr(approvals, "key_prefix", None) if on_redis else None) or "wg"
    return backend, url, prefix
