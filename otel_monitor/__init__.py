"""otel-monitor: production monitoring for Python services, as an OpenTelemetry distribution.

Under ``opentelemetry-instrument`` everything is set up by the distro and the
configurator; :func:`configure` does the same from code.

The public names below load their modules on first use: the launcher imports
this package at every start, and an app that never touches health checks
should not pay for importing them.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "operation": "semantics.operations",
    "cache_lookup": "pipeline.instruments",
    "served_by": "pipeline.instruments",
    "journey_milestone": "pipeline.instruments",
    "business": "pipeline.business",  # the module itself: business.amount(), .count(), .user()
    "queues": "pipeline.queues",  # the module itself: queues.watch_queue(), .unwatch_queue()
    "classify_error": "semantics.errors",
    "error_fingerprint": "semantics.errors",
    "set_error_fingerprint": "semantics.errors",
    "CheckOutcome": "health.registry",
    "HealthCheck": "health.registry",
    "HealthRegistry": "health.registry",
    "add_health_endpoints": "health.endpoints",
    "disk_check": "health.checks",
    "http_check": "health.checks",
    "memory_check": "health.checks",
    "redis_check": "health.checks",
    "sqlalchemy_check": "health.checks",
}


def configure(**overrides: Any) -> None:
    """Set up providers, processors, exporters and instrumentations from code.

    Keyword arguments are settings by key (``cardinality_limit=500``,
    ``config="monitor.yaml"``, …: see the README's settings table); they win
    over the environment. Calling it again, or under the launcher, is harmless.
    """
    from otel_monitor.launcher.env_defaults import DEFAULTS
    from otel_monitor.launcher.sdk_env import check_before_sdk_import

    check_before_sdk_import(DEFAULTS, overrides)  # the SDK reads some variables as it is imported
    from otel_monitor.launcher.configurator import configure_sdk, current, start_instrumentations

    already = current() is not None
    state = configure_sdk(overrides)
    if not already:
        start_instrumentations(state.settings)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'otel_monitor' has no attribute {name!r}")
    imported = importlib.import_module(f".{module}", __name__)
    value = imported if module.rpartition(".")[2] == name else getattr(imported, name)
    globals()[name] = value
    return value


__all__ = ["__version__", "configure", *_LAZY]
