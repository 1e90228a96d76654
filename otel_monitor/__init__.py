"""otel-monitor: production monitoring for Python services, as an OpenTelemetry distribution."""

from __future__ import annotations

from .health import CheckOutcome, HealthCheck, HealthRegistry
from .health_checks import disk_check, http_check, memory_check, redis_check, sqlalchemy_check
from .health_endpoints import add_health_endpoints

__version__ = "0.1.0"

__all__ = [
    "CheckOutcome",
    "HealthCheck",
    "HealthRegistry",
    "__version__",
    "add_health_endpoints",
    "disk_check",
    "http_check",
    "memory_check",
    "redis_check",
    "sqlalchemy_check",
]
