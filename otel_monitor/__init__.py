"""otel-monitor: production monitoring for Python services, as an OpenTelemetry distribution."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]


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
