"""``Mcp-Session-Id``: bound to the key (and server) that opened the session.

The agent never sees the upstream server's session id as it is: the gateway hands out
``<upstream id>.<tag>``, where the tag is an HMAC of the server name and the upstream id keyed
by the caller's virtual key. A request presenting a session id is accepted only when the tag
recomputes under the key presenting it, so a session id copied from another agent (a log, a
shared trace, a hijack) is refused: another key gives another tag. Nothing is stored, so the
check holds across workers and replicas and after a restart, and a revoked key's sessions
die with it. The tag reveals nothing of the key (HMAC-SHA256, 128 bits kept).
"""

from __future__ import annotations

import hashlib
import hmac
import re

#: The spec's session id alphabet: visible ASCII (0x21-0x7E); the upstream's is held to it.
_VISIBLE = re.compile(r"^[\x21-\x7e]{1,256}$")
_TAG_CHARS = 32


class SessionRefused(Exception):
    """The presented session id was not opened by this key on this server."""


def _tag(token: str, server: str, upstream_id: str) -> str:
    mac = hmac.new(token.encode(), f"{server}\n{upstream_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:_TAG_CHARS]


def bind(token: str, server: str, upstream_id: str) -> str | None:
    """The id the agent gets for the upstream's ``upstream_id`` (None: not a valid id)."""
    if not _VISIBLE.match(upstream_id):
        return None
    return f"{upstream_id}.{_tag(token, server, upstream_id)}"


def unbind(token: str, server: str, presented: str) -> str:
    """The upstream id behind ``presented``; raises ``SessionRefused`` unless this key opened it."""
    upstream_id, dot, tag = presented.rpartition(".")
    if not dot or not upstream_id or len(tag) != _TAG_CHARS:
        raise SessionRefused
    if not hmac.compare_digest(tag, _tag(token, server, upstream_id)):
        raise SessionRefused
    return upstream_id
