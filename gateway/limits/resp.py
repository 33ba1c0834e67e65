"""A lean pipelined Redis client for hot paths: limits (EVALSHA / SCRIPT LOAD), the cache (GET/SET).

Why not redis-py here: measured on these machines, redis-py's asyncio client spends ~180 µs
of CPU per command (PING or EVALSHA, uvloop or not) in its connection, lock and timeout
machinery; every call makes two round trips (reserve, settle), so that alone was ~400 µs of
the gateway's CPU per call. This client writes each command on one shared connection and
matches replies in order (Redis answers a connection's commands in order), parsing with
hiredis' C reader: a few µs per command. redis-py stays for everything off the hot path.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable
from typing import Any
from urllib.parse import unquote, urlparse

import hiredis


class RespError(Exception):
    """An error reply from Redis (e.g. ``NOSCRIPT``)."""


class RespConnectionError(ConnectionError):
    """The connection failed or timed out; the command's outcome is unknown."""


def bulk(data: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%s\r\n" % (len(data), data)


def encode(args: tuple[Any, ...]) -> bytes:
    out = [b"*%d\r\n" % len(args)]
    for arg in args:
        out.append(bulk(arg if isinstance(arg, bytes) else str(arg).encode()))
    return b"".join(out)


class _Expired(Exception):
    """A command's deadline passed before its reply arrived."""


def _expire(waiter: asyncio.Future[Any]) -> None:
    if not waiter.done():
        waiter.set_exception(_Expired())


class _Protocol(asyncio.Protocol):
    def __init__(self, encoding: str | None = "utf-8") -> None:
        self.reader = (
            hiredis.Reader(replyError=RespError, encoding=encoding)
            if encoding
            else hiredis.Reader(replyError=RespError)
        )
        self.waiters: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # create_connection hands a stream protocol a Transport

    def data_received(self, data: bytes) -> None:
        self.reader.feed(data)
        while True:
            reply = self.reader.gets()
            if reply is False:
                return
            if not self.waiters:
                continue
            waiter = self.waiters.popleft()
            if waiter.done():
                continue
            if isinstance(reply, RespError):
                waiter.set_exception(reply)
            else:
                waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(RespConnectionError(f"redis connection lost: {exc or 'closed'}"))


def _write(proto: _Protocol, payload: bytes) -> asyncio.Future[Any]:
    """Queue the reply's waiter, then write: replies are matched to waiters in order."""
    waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
    proto.waiters.append(waiter)
    proto.transport.write(payload)  # type: ignore[union-attr]  # only called on a connected protocol
    return waiter


class FastRedis:
    """One pipelined connection, opened lazily and reopened after any failure."""

    def __init__(self, url: str, timeout_s: float = 2.0, encoding: str | None = "utf-8") -> None:
        """``encoding``: how replies are decoded (None: bytes, for binary values)."""
        parsed = urlparse(url)
        self._encoding = encoding
        self._host = parsed.hostname or "127.0.0.1"
        self._port = parsed.port or 6379
        self._db = int((parsed.path or "/0").lstrip("/") or 0)
        self._password = unquote(parsed.password) if parsed.password else None
        self._username = unquote(parsed.username) if parsed.username else None
        self._timeout_s = timeout_s
        self._proto: _Protocol | None = None
        self._connecting: asyncio.Lock | None = None

    async def _connection(self) -> _Protocol:
        proto = self._proto
        if proto is not None and not proto.lost:
            return proto
        if self._connecting is None:
            self._connecting = asyncio.Lock()
        async with self._connecting:
            if self._proto is not None and not self._proto.lost:
                return self._proto
            loop = asyncio.get_running_loop()
            try:
                _, fresh = await asyncio.wait_for(
                    loop.create_connection(lambda: _Protocol(self._encoding), self._host, self._port),
                    self._timeout_s,
                )
            except (OSError, TimeoutError) as exc:
                raise RespConnectionError(
                    f"cannot connect to redis at {self._host}:{self._port}: {exc}"
                ) from exc
            self._proto = fresh
            if self._password:
                auth = (
                    ("AUTH", self._username, self._password) if self._username else ("AUTH", self._password)
                )
                await self._send(fresh, encode(auth))
            if self._db:
                await self._send(fresh, encode(("SELECT", self._db)))
            return fresh

    async def execute(self, *args: Any) -> Any:
        return await self._connect_and_send(encode(args))

    async def execute_encoded(self, payload: bytes) -> Any:
        """Send one command already in RESP form (the hot path pre-encodes its static parts)."""
        return await self.dispatch(payload)

    def dispatch(self, payload: bytes) -> Awaitable[Any]:
        """Write one command now and return the awaitable of its reply.

        Why split the write from the wait: Redis runs a connection's commands in the order they
        arrive, so a command written before the gateway answers its client is applied before
        anything that answer can cause (the client's next call). ``settle`` relies on this to
        let the answer go out while its reply is still on the way. When the connection is not
        up yet, connecting is part of the wait and the write happens then.
        """
        proto = self._proto
        if proto is None or proto.lost or proto.transport is None:
            return self._connect_and_send(payload)
        return self._reply(proto, _write(proto, payload))

    async def _connect_and_send(self, payload: bytes) -> Any:
        return await self._send(await self._connection(), payload)

    async def _send(self, proto: _Protocol, payload: bytes) -> Any:
        if proto.transport is None or proto.lost:
            raise RespConnectionError("redis connection lost")
        return await self._reply(proto, _write(proto, payload))

    async def _reply(self, proto: _Protocol, waiter: asyncio.Future[Any]) -> Any:
        loop = waiter.get_loop()
        # One timer handle instead of ``asyncio.wait_for`` (which wraps the future in a task-like
        # waiter of its own): the same deadline for a fraction of the per-command CPU.
        timer = loop.call_later(self._timeout_s, _expire, waiter)
        try:
            return await waiter
        except _Expired as exc:
            # Replies are matched in order: after a lost reply the connection cannot be trusted.
            self._drop(proto)
            raise RespConnectionError(f"redis did not answer within {self._timeout_s} s") from exc
        finally:
            timer.cancel()

    def _drop(self, proto: _Protocol) -> None:
        if proto.transport is not None:
            proto.transport.close()
        proto.connection_lost(None)
        if self._proto is proto:
            self._proto = None

    async def close(self) -> None:
        if self._proto is not None:
            self._drop(self._proto)
