"""``Mcp-Session-Id``: bound to the key (and server) that opened the session.

The agent never sees the upstream server's session id as it is: the gateway hands out
``<upstream id>.<tag>``, where the tag is an HMAC of the server name and the upstream id keyed
by the caller's virtual key. A request presenting a session id is accepted only when the tag
recomputes under the key presenting it, so a session id copied from another agent (a log, a
shared trace, a hijack) is refused: another key gives another tag. Nothing is stored, so the
check holds across workers and replicas and after a restart, and a revoked key's sessions
die with it. The tag reveals nothing of the key (HMAC-SHA256, 128 bits kept).

An HMAC through OpenSSL costs ~25k instructions (two digests, each paying OpenSSL 3's fetch),
and an agent presents the same session id on every call; so each worker remembers the ids
it checked or handed out (``_checked``, bounded), by the SHA-256 of the key that owns them
(``hash_key``: what keys.yaml stores, never the key), the server and the presented id. A hit
is the same answer the HMAC would give (the tag is a pure function of those three); a
refusal is never remembered, so a forged tag is recomputed each time.
"""

from __future__ import annotations

import hashlib
import hmac
import re

#: The spec's session id alphabet: visible ASCII (0x21-0x7E); the upstream's is held to it.
_VISIBLE = re.compile(r"^[\x21-\x7e]{1,256}$")
_TAG_CHARS = 32
#: Checked session ids remembered per worker (oldest forgotten first).
_MAX_CHECKED = 4096
#: (key digest, server, agent-facing id) -> the upstream id, for ids whose tag was good.
_checked: dict[tuple[str, str, str], str] = {}


class SessionRefused(Exception):
    """The presented session id was not opened by this key on this server."""


def _tag(token: str, server: str, upstream_id: str) -> str:
    mac = hmac.new(token.encode(), f"{server}\n{upstream_id}".encode(), hashlib.sha256)
    return mac.hexdigest()[:_TAG_CHARS]


def _remember(key: tuple[str, str, str], upstream_id: str) -> None:
    if len(_checked) >= _MAX_CHECKED:
        del _checked[next(iter(_checked))]
    _checked[key] = upstream_id


def bind(token: str, server: str, upstream_id: str, digest: str | None = None) -> str | None:
    """The id the agent gets for the upstream's ``upstream_id`` (None: not a valid id);
    ``digest``: the key's ``hash_key``, to remember the id as checked."""
    if not _VISIBLE.match(upstream_id):
        return None
    bound = f"{upstream_id}.{_tag(token, server, upstream_id)}"
    if digest is not None:
        _remember((digest, server, bound), upstream_id)
    return bound


def unbind(token: str, server: str, presented: str, digest: str | None = None) -> str:
    """The upstream id behind ``presented``; raises ``SessionRefused`` unless this key opened it.
    ``digest``: the key's ``hash_key`` (the check is remembered under it)."""
    if digest is not None:
        known = _checked.get((digest, server, presented))
        if known is not None:
            return known
    upstream_id, dot, tag = presented.rpartition(".")
    if not dot or not upstream_id or len(tag) != _TAG_CHARS:
        raise SessionRefused
    if not hmac.compare_digest(tag, _tag(token, server, upstream_id)):
        raise SessionRefused
    if digest is not None:
        _remember((digest, server, presented), upstream_id)
    return upstream_id
