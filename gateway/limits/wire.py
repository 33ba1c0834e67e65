"""The hot-path Redis commands in RESP form, with every static part encoded once.

A call's reserve names ~17 keys and ~50 arguments; building and encoding them afresh per call
was most of ``RedisStore``'s CPU. What depends only on the team (its config and index keys,
the record key's prefix) or only on a scope (its three key names, its field and configured
limits) is encoded once per ``(team, scope)`` and cached here, on the store, for the app's
lifespan; per call only the call's own numbers are encoded and the pieces joined.

The argument layouts are the ones documented beside each script in ``lua.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from gateway.limits.resp import bulk
from gateway.limits.store import KeySpace, ScopeSpec

#: Entries kept per cache before it is emptied (run and agent ids are caller-chosen).
MAX_CACHED = 10_000


def _opt(v: int | None) -> int:
    return -1 if v is None else v


class ScopeWire:
    """One scope of one team: its keys (h, l, w) as RESP, and its script arguments as JSON."""

    __slots__ = ("keys", "lease_key", "reserve_arg", "settle_arg")

    def __init__(self, base: str, spec: ScopeSpec) -> None:
        self.keys = bulk((base + ":h").encode()) + bulk((base + ":l").encode()) + bulk((base + ":w").encode())
        self.lease_key = bulk((base + ":l").encode())
        d, m, t = spec.budget_nano
        self.reserve_arg = orjson.dumps(
            [
                spec.field,
                _opt(spec.rpm),
                _opt(spec.tpm),
                _opt(d),
                _opt(m),
                _opt(t),
                spec.retention_ms,
                _opt(spec.concurrent),
            ]
        )[1:-1]
        self.settle_arg = orjson.dumps([spec.retention_ms, spec.field])[1:-1]


class TeamWire:
    __slots__ = ("cfg", "idx", "record")

    def __init__(self, keys: KeySpace, team: str) -> None:
        self.cfg = bulk(keys.cfg(team).encode())
        self.idx = bulk(keys.idx(team).encode())
        self.record = keys.record(team, "")


class Wire:
    """Builds the EVALSHA payloads of one store (one key prefix)."""

    def __init__(self, keys: KeySpace) -> None:
        self._keys = keys
        self._teams: dict[str, TeamWire] = {}
        self._scopes: dict[tuple[str, ScopeSpec], ScopeWire] = {}

    def team(self, team: str) -> TeamWire:
        tw = self._teams.get(team)
        if tw is None:
            if len(self._teams) >= MAX_CACHED:
                self._teams.clear()
            tw = self._teams[team] = TeamWire(self._keys, team)
        return tw

    def scope(self, team: str, spec: ScopeSpec) -> ScopeWire:
        key = (team, spec)
        sw = self._scopes.get(key)
        if sw is None:
            if len(self._scopes) >= MAX_CACHED:
                self._scopes.clear()
            sw = self._scopes[key] = ScopeWire(self._keys.scope(team, spec.kind, spec.ident), spec)
        return sw

    def scopes(self, team: str, specs: Sequence[ScopeSpec]) -> list[ScopeWire]:
        return [self.scope(team, s) for s in specs]


def evalsha(sha: str, keys: Sequence[bytes], n_keys: int, argv: bytes) -> bytes:
    """``EVALSHA sha n_keys <keys> <argv>``: ``keys`` are RESP bulk strings (some hold several)."""
    return b"".join(
        (
            b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%s\r\n" % (n_keys + 4, sha.encode()),
            bulk(b"%d" % n_keys),
            *keys,
            bulk(argv),
        )
    )


def json_args(head: list[object], parts: Sequence[bytes]) -> bytes:
    """A JSON array of ``head`` followed by the pre-encoded ``parts`` (each a JSON fragment)."""
    encoded = orjson.dumps(head)
    if not parts:
        return encoded
    return b",".join((encoded[:-1], *parts)) + b"]"
