"""Observability: metrics (covet.observability.metrics), tracing and structured logs."""
