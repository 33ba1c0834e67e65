"""Per-call increments without prometheus-client's per-call checks.

The request path records about ten values per call. The public ``inc``/``observe`` check on
every call that the child is observable and the amount non-negative, handle exemplars, and
find a histogram bucket with a Python loop: measured here, that was about half of what the
gateway spent on metrics per call. These two functions go straight to the value objects
behind a labelled child (``_value``; ``_sum``, ``_buckets``, ``_upper_bounds``), which work
the same in single- and multi-process mode. They are private attributes, so ``fast_path()``
checks them once on a throwaway metric and the public methods are used if they are absent.
Only for children (or unlabelled metrics) of known-good metrics with non-negative amounts and
no exemplars.

In Prometheus multiprocess mode prometheus-client writes every metric's values to the shared
files, whatever registry it is on, so the probe's series land there too: they are named
``PROBE*`` and ``metrics.render`` leaves them out of ``/metrics``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

#: The throwaway probe metrics' name (prefix of all three).
PROBE = "wardgate_internal_fastpath_probe"

Count = Callable[[Any, float], None]
Observe = Callable[[Any, float], None]


def _count(child: Any, amount: float = 1.0) -> None:
    child._value.inc(amount)


def _observe(child: Any, value: float) -> None:
    child._sum.inc(value)
    child._buckets[bisect_left(child._upper_bounds, value)].inc(1)


def _public_count(child: Any, amount: float = 1.0) -> None:
    child.inc(amount)


def _public_observe(child: Any, value: float) -> None:
    child.observe(value)


def fast_path() -> tuple[Count, Observe]:
    """``(count, observe)``: the direct ones when this prometheus-client has the expected
    internals (and they count like the public methods), else the public methods."""
    registry = CollectorRegistry()
    try:
        counter = Counter(PROBE, "probe", ["l"], registry=registry).labels("x")
        histogram = Histogram(PROBE + "_h", "probe", ["l"], buckets=(1.0, 2.0), registry=registry).labels("x")
        unlabelled = Histogram(PROBE + "_u", "probe", buckets=(1.0, 2.0), registry=registry)
        _count(counter, 2.0)
        for value in (0.5, 1.0, 1.5, 3.0):
            _observe(histogram, value)
            _observe(unlabelled, value)
        samples = {(s.name, s.labels.get("le")): s.value for m in registry.collect() for s in m.samples}
        expected = {
            (PROBE + "_total", None): 2.0,
            (PROBE + "_h_bucket", "1.0"): 2.0,
            (PROBE + "_h_bucket", "2.0"): 3.0,
            (PROBE + "_h_bucket", "+Inf"): 4.0,
            (PROBE + "_h_sum", None): 6.0,
            (PROBE + "_u_bucket", "2.0"): 3.0,
            (PROBE + "_u_sum", None): 6.0,
        }
        if all(samples.get(k) == v for k, v in expected.items()):
            return _count, _observe
    except (AttributeError, TypeError, IndexError):
        pass
    return _public_count, _public_observe
