"""Deployment choice, retries with backoff, fallback and circuit breaking.

Retries are only ever made while nothing has reached the client: for a stream, the router
waits for the upstream's first event before it hands the stream over, so a connection that
fails or breaks before its first event is retried on the next deployment like any other.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from gateway.call import ModelResponse
from gateway.errors import (
    UpstreamAuthFailed,
    UpstreamError,
    UpstreamRateLimited,
    UpstreamRejected,
    UpstreamTimeout,
)
from gateway.models import Deployment, ModelCatalog, ModelEntry
from gateway.providers.base import Attempt, Provider, UpstreamRequest
from gateway.providers.config import ProviderSettings
from gateway.providers.registry import ProviderFactory, UnknownProviderKind, resolve
from gateway.sse import EventBatches, SSEEvent

log = logging.getLogger("wardgate.providers")


class CircuitBreaker:
    """Closed → open after N consecutive failures → half-open after ``open_s`` (one trial)."""

    __slots__ = ("_failures", "_open_s", "_opened_at", "_threshold", "_trial")

    def __init__(self, threshold: int, open_s: float) -> None:
        self._threshold = threshold
        self._open_s = open_s
        self._failures = 0
        self._opened_at: float | None = None
        self._trial = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        return "half_open" if time.monotonic() - self._opened_at >= self._open_s else "open"

    def allow(self) -> bool:
        state = self.state
        if state == "closed":
            return True
        if state == "half_open" and not self._trial:
            self._trial = True
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._trial = False

    def failure(self) -> None:
        self._failures += 1
        self._trial = False
        if self._failures >= self._threshold:
            self._opened_at = time.monotonic()


@dataclass(slots=True)
class Routed:
    response: ModelResponse
    deployment: Deployment
    retries: int


class Router:
    def __init__(
        self, catalog: ModelCatalog, providers: dict[str, Provider], settings: ProviderSettings
    ) -> None:
        self._catalog = catalog
        self._providers = providers
        self._settings = settings
        self.breakers = {
            name: CircuitBreaker(settings.circuit_failures, settings.circuit_open_s) for name in providers
        }

    @classmethod
    def build(
        cls,
        catalog: ModelCatalog,
        settings: ProviderSettings,
        kinds: Mapping[str, ProviderFactory] | None = None,
    ) -> Router:
        """One provider per enabled deployment, by its kind (see ``gateway.providers.registry``).

        ``kinds`` adds or overrides kinds for this router only (tests, embedders).
        """
        providers: dict[str, Provider] = {}
        factories: dict[str, ProviderFactory] = {}
        for entry in catalog.entries():
            for dep in entry.deployments:
                factory = factories.get(dep.provider)
                if factory is None:
                    try:
                        factory = factories[dep.provider] = resolve(dep.provider, kinds)
                    except UnknownProviderKind as exc:
                        raise UnknownProviderKind(f"deployment {dep.name}: {exc}") from None
                providers[dep.name] = factory(dep, settings)
        return cls(catalog, providers, settings)

    async def close(self) -> None:
        for provider in self._providers.values():
            await provider.close()

    def _order(self, entry: ModelEntry) -> list[Deployment]:
        deps = list(entry.deployments)
        if len(deps) > 1:
            weights = [max(d.weight, 1e-9) for d in deps]
            first = random.choices(range(len(deps)), weights=weights)[0]
            deps.insert(0, deps.pop(first))
        return deps

    async def send(self, entry: ModelEntry, request: UpstreamRequest) -> Routed:
        """Send to the first healthy deployment; retry and fall back on retryable failures.

        Connection errors and 5xx are retried (with backoff) on the same or the next
        deployment; a timeout or a provider 429 only moves on to another deployment, since
        retrying the same one would multiply the caller's wait for nothing; a 401/403/407
        (that deployment's key is bad) moves on at once. Any other 4xx is the request's own
        fault and is answered as it is. Every attempt is
        appended to ``request.attempts`` (deployment, upstream status, error code), so a
        failed call's audit event says what was tried.
        """
        order = self._order(entry)
        attempts = max(1, self._settings.max_attempts)
        excluded: set[str] = set()
        last: UpstreamError | None = None
        for attempt in range(attempts):
            candidates = [d for d in order if d.name not in excluded and self.breakers[d.name].allow()]
            if not candidates:
                break
            dep = candidates[attempt % len(candidates)]
            breaker = self.breakers[dep.name]
            request.body["model"] = dep.model
            tried = Attempt(dep.name)
            request.attempts.append(tried)
            try:
                response = await self._providers[dep.name].send(request)
                tried.status = response.status
                if response.events is not None:
                    response.events = await _prefetch(response.events)
            except UpstreamRejected as exc:
                tried.status, tried.error = exc.upstream_status, exc.code
                breaker.success()  # the deployment answers; retrying cannot change its answer
                raise
            except UpstreamAuthFailed as exc:
                # This deployment's key is bad (revoked, wrong project): retrying it cannot
                # help, but another deployment of the model has its own key. Fall back at once
                # (no backoff: it is not overloaded). Not a circuit failure: the deployment
                # answers, and an open circuit would hide the real cause ("circuit open"
                # instead of upstream_auth_failed) from the operator who must fix the key.
                tried.status, tried.error = exc.upstream_status, exc.code
                last = exc
                excluded.add(dep.name)
                breaker.success()
                log.error(
                    "upstream %s refused the gateway's credentials (HTTP %s)", dep.name, exc.upstream_status
                )
                continue
            except UpstreamError as exc:
                tried.status, tried.error = exc.upstream_status or tried.status, exc.code
                last = exc
                if isinstance(exc, UpstreamRateLimited | UpstreamTimeout):
                    excluded.add(dep.name)
                if not isinstance(exc, UpstreamRateLimited):
                    breaker.failure()
                log.warning(
                    "upstream %s failed (attempt %d/%d): %s", dep.name, attempt + 1, attempts, exc.message
                )
                if attempt + 1 < attempts and len(excluded) < len(order):
                    await asyncio.sleep(self._backoff(attempt, exc))
                continue
            breaker.success()
            return Routed(response, dep, attempt)
        if last is None:
            raise UpstreamError(f"No healthy deployment for model {entry.name} (circuit open).")
        raise last

    def _backoff(self, attempt: int, exc: UpstreamError) -> float:
        if isinstance(exc, UpstreamRateLimited):
            hinted = _retry_after_s(exc.headers)
            if hinted is not None:
                return min(hinted, self._settings.backoff_max_s)
        delay = self._settings.backoff_base_s * (2**attempt)
        return min(delay * (0.5 + random.random()), self._settings.backoff_max_s)


def _retry_after_s(headers: dict[str, str]) -> float | None:
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
        if "retry-after" in headers:
            return float(headers["retry-after"])
    except ValueError:
        return None
    return None


async def _prefetch(batches: EventBatches) -> EventBatches:
    """Wait for the first events (failures before them are retryable), then chain the rest."""
    try:
        first = await anext(batches)
    except StopAsyncIteration as exc:
        raise UpstreamError("Upstream closed the stream before sending any event.") from exc
    return _Prefetched(first, batches)


class _Prefetched:
    """The upstream's batches, the first one already read. A plain iterator rather than a
    generator around the upstream's: one layer less on every batch of every stream."""

    __slots__ = ("_first", "_rest")

    def __init__(self, first: Sequence[SSEEvent], rest: EventBatches) -> None:
        self._first: Sequence[SSEEvent] | None = first
        self._rest = rest

    def __aiter__(self) -> _Prefetched:
        return self

    async def __anext__(self) -> Sequence[SSEEvent]:
        first = self._first
        if first is not None:
            self._first = None
            return first
        return await anext(self._rest)

    async def aclose(self) -> None:
        """Close the upstream stream (and its connection) when the reader stops early."""
        self._first = None
        await self._rest.aclose()  # type: ignore[attr-defined]  # the upstream reader is an async generator
