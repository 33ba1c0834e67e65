"""The connection limits of one worker (``IntakeGuard``): its connections, the sweep that
closes what is past its deadline, the connection cap, and their metrics.

``WardgateProtocol`` (protocol.py) is one connection; it reports to the guard, which the app
builds in its lifespan and hands to every connection through the lifespan state. See
protocol.py for the phases a connection goes through.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import resource
from collections import Counter
from collections.abc import Callable
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client import Counter as Metric

from gateway.settings import ServerSettings

log = logging.getLogger("wardgate.http")


class Connection(Protocol):
    """What the guard needs of a connection (``protocol.WardgateProtocol``).

    Named here rather than imported so that the guard does not depend on the connection class
    that depends on it (the import graph test forbids the cycle).
    """

    @property
    def phase(self) -> int: ...

    @property
    def deadline(self) -> float: ...

    @property
    def transport(self) -> asyncio.BaseTransport: ...

    @property
    def answering(self) -> bool: ...

    def expire(self, now: float) -> None: ...


HEAD, BODY, APP, DRAIN, IDLE, CLOSING = range(6)
NEVER = float("inf")
#: How long, and how much, a refused connection keeps reading (and dropping) before it
#: closes: enough for the answer to be read, not a sink for a client that keeps sending.
LINGER_S = 2.0
LINGER_MAX_BYTES = 256 * 1024
#: File descriptors kept free of client connections (upstream pool, Redis, PostgreSQL, files).
_FD_RESERVE = 128
_LOG_EVERY_S = 10.0
#: The longest pause between two sweeps, so a timeout fires at most this late (plus the event
#: loop's lag). It was 0.5 s: with the defaults a 10 s header timeout fired at up to 10.5 s. A
#: sweep is one pass over the worker's connections: ~0.55-0.7 ms at 10,000 connections, so
#: ten a second cost < 1% of a core at that many (measured on a loaded 2-core machine).
SWEEP_MAX_S = 0.1
#: Why a connection was refused or closed: the ``reason`` label of
#: ``wardgate_connections_refused_total``, and the words of the summary log line.
REASONS = {
    "connection_cap": "refused at server.max_connections (503)",
    "displaced": "displaced at server.max_connections",
    "inflight": "calls shed at server.max_inflight_requests (503)",
    "silent": "silent past server.header_timeout_s",
    "header_timeout": "headers past server.header_timeout_s (408)",
    "body_timeout": "body past server.body_timeout_s (408)",
    "headers_too_large": "headers over server.max_header_bytes or max_headers (431)",
    "bad_request": "malformed HTTP (400)",
    "drain_bound": "body over server.drain_max_bytes after an early answer",
    "drain_timeout": "body unfinished after an early answer",
}


def connection_cap(configured: int) -> int:
    """``configured``, held below the process's open-file limit: at the limit ``accept`` fails
    and a legitimate client waits behind silent connections instead of displacing one."""
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ValueError, OSError):  # pragma: no cover - no such limit on this platform
        return configured
    if soft == resource.RLIM_INFINITY:
        return configured
    return max(1, min(configured, soft - max(_FD_RESERVE, soft // 4)))


class IntakeGuard:
    """The connection limits of one worker: its connections, their sweep, and the cap.

    Built in the app's lifespan and handed to each connection through the lifespan state.
    """

    def __init__(
        self,
        server: ServerSettings,
        registry: CollectorRegistry | None = None,
        inflight: Callable[[], int] | None = None,
    ) -> None:
        self.header_timeout = server.header_timeout_s
        self.body_timeout = server.body_timeout_s
        self.keepalive_timeout = server.keepalive_timeout_s
        self.max_header_bytes = server.max_header_bytes
        self.max_headers = server.max_headers
        self.drain_max_bytes = server.drain_max_bytes
        self.max_connections = connection_cap(server.max_connections)
        if self.max_connections < server.max_connections:
            log.info(
                "server.max_connections %d is held at %d: the process may open %d files",
                server.max_connections,
                self.max_connections,
                resource.getrlimit(resource.RLIMIT_NOFILE)[0],
            )
        shortest = min(self.header_timeout, self.body_timeout, self.keepalive_timeout, LINGER_S)
        #: Deadlines are checked this often: a timeout fires up to this late.
        self.interval = min(max(shortest / 4, 0.02), SWEEP_MAX_S)
        self.connections: set[Connection] = set()
        #: Connections refused or closed, by reason, since the last log line.
        self.counts: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._metric: Metric | None = None
        self._gauges: _LiveGauges | None = None
        if registry is not None:
            self._metric = Metric(
                "wardgate_connections_refused",
                "Connections refused or closed by the gateway's limits, and calls shed, by reason.",
                ["reason"],
                registry=registry,
            )
            for reason in REASONS:
                self._metric.labels(reason)
            self._gauges = _LiveGauges(registry, lambda: len(self.connections), inflight)

    def count(self, reason: str) -> None:
        """One refusal or close for ``reason`` (a key of ``REASONS``)."""
        self.counts[reason] += 1
        if self._metric is not None:
            self._metric.labels(reason).inc()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="wardgate-intake-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._log_counts()
        if self._gauges is not None:
            self._gauges.close()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        logged = loop.time()
        while True:
            await asyncio.sleep(self.interval)
            now = loop.time()
            self.sweep(now)
            if self._gauges is not None:
                self._gauges.export()
            if self.counts and now - logged >= _LOG_EVERY_S:
                self._log_counts()
                logged = now

    def sweep(self, now: float) -> None:
        """Act on every connection past its deadline (one pass; O(connections))."""
        for conn in [c for c in self.connections if c.deadline <= now]:
            try:
                conn.expire(now)
            except Exception:  # one connection's failure must not end every timeout of the worker
                log.exception("closing a timed-out connection failed; closing it hard")
                self.connections.discard(conn)
                conn.transport.close()

    def admit(self, conn: Connection) -> bool:
        """Track a new connection; at the cap, displace an idle or header-sending one first."""
        if len(self.connections) >= self.max_connections:
            victim = self._displaceable()
            if victim is None:
                return False
            self.count("displaced")
            self.connections.discard(victim)
            victim.transport.close()
        self.connections.add(conn)
        return True

    def _displaceable(self) -> Connection | None:
        # Set order is arbitrary: an attacker holding many connections cannot protect its own.
        for conn in self.connections:
            if conn.phase == IDLE or (conn.phase == HEAD and not conn.answering):
                return conn
        return None

    def release(self, conn: Connection) -> None:
        self.connections.discard(conn)

    def _log_counts(self) -> None:
        if self.counts:
            log.warning(
                "connections refused or closed: %s",
                ", ".join(f"{n} {REASONS[r]}" for r, n in self.counts.items()),
            )
            self.counts.clear()


class _LiveGauges:
    """Open connections and calls in flight, per worker and summed over the live workers.

    One process: the gauges read their value at scrape time (``set_function``). With
    ``PROMETHEUS_MULTIPROC_DIR`` (several workers), ``/metrics`` reads every worker's values
    from files, which a function never writes: the gauges were missing. So there each worker
    writes its values on every intake sweep (a timeout's granularity: at most ~0.1 s old)
    in ``livesum`` mode (the scrape sums the workers' files), and removes its files when it
    stops (``multiprocess.mark_process_dead``). A worker that crashes cannot: the supervisor
    of ``wardgate serve`` does it when it replaces the worker (``gateway/http/serve.py``)."""

    def __init__(
        self, registry: CollectorRegistry, connections: Callable[[], int], inflight: Callable[[], int] | None
    ) -> None:
        self._multi = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        self._sources: list[tuple[Gauge, Callable[[], int]]] = [
            (
                Gauge(
                    "wardgate_connections_open",
                    "Open client connections (per worker; summed over live workers in multiprocess mode).",
                    registry=registry,
                    multiprocess_mode="livesum",
                ),
                connections,
            )
        ]
        if inflight is not None:
            gauge = Gauge(
                "wardgate_calls_in_flight",
                "OpenAI-compatible calls in flight (per worker; summed over live workers in multiprocess mode).",
                registry=registry,
                multiprocess_mode="livesum",
            )
            self._sources.append((gauge, inflight))
        if not self._multi:
            for gauge, read in self._sources:
                gauge.set_function(read)
        self.export()

    def export(self) -> None:
        """Write the current values where a multiprocess scrape reads them (else a no-op)."""
        if self._multi:
            for gauge, read in self._sources:
                gauge.set(read())

    def close(self) -> None:
        if self._multi:
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())
