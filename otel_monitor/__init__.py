"""otel-monitor: production monitoring for Python services, as an OpenTelemetry distribution."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
