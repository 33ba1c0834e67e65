"""What the settings know of a Redis address: its mode, its validation, how to name it.

Kept apart from ``gateway.redisconn`` (the clients) because every settings section that may
point at Redis (limits, approvals, keys) validates its URL when the settings are built, and
that happens in every process (``wardgate serve`` with the memory backends, every CLI
command): importing redis-py there cost ~0.2 s of CPU that only a Redis-backed store needs.
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit

RedisMode = Literal["standalone", "cluster"]


def where(url: str) -> str:
    """``host:port`` of a Redis URL, for messages (never the password)."""
    parts = urlsplit(url)
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"


def check_url(url: str, mode: str) -> str:
    """Settings validation: a cluster URL names database 0 (a cluster has no other)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"redis_url must be redis://, rediss:// or unix://, not {parts.scheme!r}")
    if mode == "cluster":
        if parts.scheme == "unix":
            raise ValueError("redis_mode cluster needs a redis:// or rediss:// seed node URL")
        if parts.path.strip("/") not in ("", "0"):
            raise ValueError("redis_mode cluster: a Redis Cluster has only database 0; drop the /<db>")
    return url
