"""otel-monitor: production monitoring for Python services, as an OpenTelemetry distribution.

Under ``opentelemetry-instrument`` everything is set up by the distro and the
configurator; :func:`configure` does the same from code.
"""

from __future__ import annotations

from typing import Any

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


__all__ = ["__version__", "configure"]


# placeholders until the semantics branch lands
import contextlib as _contextlib
from typing import Any as _Any


class _NoOperation(_contextlib.ContextDecorator, _contextlib.AbstractAsyncContextManager):
    def __init__(self, name: str, **attrs: _Any) -> None:
        self.name = name

    def __enter__(self) -> _NoOperation:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


def operation(name: str, **attrs: _Any) -> _NoOperation:
    return _NoOperation(name, **attrs)


def cache_lookup(cache: str, hit: bool) -> None:
    return None


def served_by(layer: str, operation: str | None = None) -> None:
    return None


def journey_milestone(step: str, *, user_id: object = None, journey: str | None = None, **attrs: _Any) -> None:
    return None


__all__ += ["operation", "cache_lookup", "served_by", "journey_milestone"]
