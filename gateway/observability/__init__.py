"""Metrics (Prometheus) and traces (OpenTelemetry) for the gateway; fed from the audit stage."""
