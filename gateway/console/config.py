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
    #: Failed sign-ins (gateway/console/throttle.py): after this many from one client address,
    #: or with one key prefix, within ``signin_window_s``, sign-ins from it are refused (429,
    #: ``Retry-After``) until the oldest failure leaves the window.
    signin_max_failures_per_ip: int = Field(default=10, ge=1, le=10_000)
    signin_max_failures_per_key_prefix: int = Field(default=20, ge=1, le=10_000)
    signin_window_s: float = Field(default=900.0, gt=0, le=86400.0)
    #: Where the counts live. ``auto``: the limits' Redis when ``limits.backend`` is ``redis``,
    #: else the sessions' Redis when they are on Redis, else ``memory`` (one process).
    signin_throttle_backend: Literal["auto", "memory", "redis"] = "auto"


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


def throttle_store_of(
    console: ConsoleSettings, limits: Any, sessions: tuple[str, str, str]
) -> tuple[str, str, str, str]:
    """``(backend, redis_url, redis_mode, key_prefix)`` of the sign-in counts, ``auto`` resolved:
    the limits' Redis (its url, mode and prefix) when ``limits`` is on Redis, else the sessions'
    (``sessions``: what ``session_store_of`` answered)."""
    limits_on_redis = bool(getattr(limits, "enabled", False)) and getattr(limits, "backend", "") == "redis"
    wanted = console.signin_throttle_backend
    if limits_on_redis and wanted in ("auto", "redis"):
        return "redis", limits.redis_url, limits.redis_mode, limits.key_prefix
    session_backend, url, prefix = sessions
    return (session_backend if wanted == "auto" else wanted), url, "standalone", prefix
