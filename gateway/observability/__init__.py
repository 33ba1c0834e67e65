"""Metrics (Prometheus) and traces (OpenTelemetry) for the gateway: the observability component.

    component.py    Observability: the component (metrics, GC watch, tracer, ``/metrics``)
    config.py       ObservabilitySettings: the ``observability`` section (metrics, tracing)
    metrics.py      Metrics: per-call series recorded from the finished call; ``/metrics``
    fast.py         per-call increments without prometheus-client's per-call checks
    multiproc.py    multiprocess mode: scrape-time values to files, dead workers, a clean start
    buffered.py     multiprocess mode: values written to their files in batches, not per change
    labels.py       bounded label values (the rest count as ``other``)
    gcwatch.py      GC pauses by generation (histogram, and a log line over 20 ms)
    tracing.py      CallTracer: one span per call, a child per stage, GenAI attributes
    traceparent.py  the trace id of a W3C ``traceparent`` without loading OpenTelemetry

The audit stage's one finish hook feeds the metrics and the spans (it is given this
component); other areas register their own series on the same registry.
"""
