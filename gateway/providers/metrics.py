"""``wardgate_circuit_state``: each deployment's circuit breaker (0 closed, 1 half-open, 2 open).

One process: a collector reads the breakers at scrape time (nothing per call). Prometheus
multiprocess mode: each worker has its own breakers, so each writes their states into a
file-backed gauge every second (``gateway.observability.multiproc.follow``), merged by
``livemax``: the deployment's value is its worst state among the live workers. Labels are
the deployment names of ``models.yaml``: bounded by configuration.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateway.observability.multiproc import enabled
from gateway.providers.router import CircuitBreaker

NAME = "wardgate_circuit_state"
HELP = "Circuit breaker state per deployment: 0 closed, 1 half-open, 2 open."
STATE_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class CircuitMetrics:
    """Registers the series on ``registry``; ``sync`` (multiprocess mode only) writes the states."""

    def __init__(self, registry: CollectorRegistry, breakers: Mapping[str, CircuitBreaker]) -> None:
        self._breakers = breakers
        self.multiprocess = enabled()
        self._gauge: Gauge | None = None
        if self.multiprocess:
            self._gauge = Gauge(NAME, HELP, ["deployment"], registry=registry, multiprocess_mode="livemax")
        else:
            registry.register(_CircuitCollector(breakers))

    def sync(self) -> None:
        if self._gauge is not None:
            for name, breaker in self._breakers.items():
                self._gauge.labels(name).set(STATE_VALUES[breaker.state])


class _CircuitCollector(Collector):
    def __init__(self, breakers: Mapping[str, CircuitBreaker]) -> None:
        self._breakers = breakers

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(NAME, HELP, labels=["deployment"])
        for name, breaker in sorted(self._breakers.items()):
            family.add_metric([name], STATE_VALUES[breaker.state])
        yield family
