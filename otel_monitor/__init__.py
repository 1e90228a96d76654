"""otel-monitor: production monitoring for Python services, as an OpenTelemetry distribution."""

from __future__ import annotations

from .errors import classify_error, error_fingerprint, set_error_fingerprint
from .journeys import journey_milestone
from .metrics import cache_lookup, served_by
from .operations import operation

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "cache_lookup",
    "classify_error",
    "error_fingerprint",
    "journey_milestone",
    "operation",
    "served_by",
    "set_error_fingerprint",
]
