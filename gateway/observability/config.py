"""The ``observability`` settings section: metrics and traces.

Until this section existed they sat inside the audit section (``audit.metrics``,
``audit.tracing``); those keys are still read (``gateway/settings.py`` moves them here and
logs that they are deprecated).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class MetricsSettings(BaseModel):
    enabled: bool = True
    #: Distinct values kept per free-form label (team, model, deployment...); the rest are
    #: counted under ``other`` so a misbehaving client cannot blow up the series count.
    max_label_values: int = 200


class TracingSettings(BaseModel):
    #: Off by default: with it off nothing is imported or built on the hot path.
    enabled: bool = False
    exporter: Literal["otlp", "console", "none"] = "otlp"
    #: OTLP/HTTP traces endpoint, e.g. ``http://collector:4318/v1/traces``; unset = the
    #: exporter's own default / ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``.
    otlp_endpoint: str | None = None
    otlp_headers: dict[str, str] = Field(default_factory=dict)
    service_name: str = "wardgate"
    #: Head sampling for calls that arrive without a sampled ``traceparent``.
    sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)


class ObservabilitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    tracing: TracingSettings = Field(default_factory=TracingSettings)
