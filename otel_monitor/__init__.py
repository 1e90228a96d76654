"""otel-monitor: production monitoring for Python services, as an OpenTelemetry distribution.

Under ``opentelemetry-instrument`` everything is set up by the distro and the
configurator; :func:`configure` does the same from code.
"""

from __future__ import annotations

from typing import Any

from .errors import classify_error, error_fingerprint, set_error_fingerprint
from .journeys import journey_milestone
from .metrics import cache_lookup, served_by
from .operations import operation

__version__ = "0.1.0"


def configure(**overrides: Any) -> None:
    """Set up providers, processors, exporters and instrumentations from code.

    Keyword arguments are settings by key (``cardinality_limit=500``,
    ``config="monitor.yaml"``, …: see the README's settings table); they win
    over the environment. Calling it again, or under the launcher, is harmless.
    """
    from .configurator import configure_sdk, current, start_instrumentations

    already = current() is not None
    state = configure_sdk(overrides)
    if not already:
        start_instrumentations(state.settings)


__all__ = [
    "__version__",
    "cache_lookup",
    "classify_error",
    "configure",
    "error_fingerprint",
    "journey_milestone",
    "operation",
    "served_by",
    "set_error_fingerprint",
]
