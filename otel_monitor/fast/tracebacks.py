"""The SDK's traceback formatting through :mod:`otel_monitor.pipeline.tracebacks`.

The SDK formats an exception with ``traceback.format_exception`` in three
places: a log record emitted with ``exception=`` (FastAPI's native
telemetry logs every unhandled exception so), a span's
``record_exception`` and the logging handler's ``exc_info``.  Each of
those modules reads the name ``traceback`` from its own globals; here it
is replaced, in those modules only, by a stand-in whose
``format_exception`` gives the same text from the per-error and per-site
formatting, and whose every other name is the traceback module's.  Any
call with arguments that formatting does not cover (a limit, no chain,
another traceback than the exception's own) goes to the traceback module.

Switch: ``OTEL_MONITOR_LEAN_TRACEBACKS=false``.
"""

from __future__ import annotations

import importlib
import traceback
from typing import Any

from otel_monitor.pipeline.tracebacks import format_exception as _format_once

# The SDK modules that format exceptions, each through its global name ``traceback``.
SDK_MODULES = (
    "opentelemetry.sdk._logs._internal._exceptions",
    "opentelemetry.sdk._logs._internal",
    "opentelemetry.sdk.trace",
)
_SENTINEL: Any = object()


class _TracebackModule:
    """The traceback module, with ``format_exception`` formatting once per error and per site."""

    def __getattr__(self, name: str) -> Any:
        return getattr(traceback, name)

    @staticmethod
    def format_exception(exc: Any, /, value: Any = _SENTINEL, tb: Any = _SENTINEL, limit: int | None = None,
                         chain: bool = True) -> list[str]:
        if value is _SENTINEL and tb is _SENTINEL and isinstance(exc, BaseException):
            if limit is None and chain:
                return [_format_once(exc)]
            return traceback.format_exception(exc, limit=limit, chain=chain)
        if limit is None and chain and isinstance(value, BaseException) and tb is value.__traceback__:
            return [_format_once(value)]
        given = {key: v for key, v in (("value", value), ("tb", tb)) if v is not _SENTINEL}
        return traceback.format_exception(exc, **given, limit=limit, chain=chain)


STANDIN = _TracebackModule()


def install() -> list[str]:
    """Point the SDK's formatting at :data:`STANDIN`; returns the modules changed (those of the known layout)."""
    changed = []
    for name in SDK_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "traceback", None) is traceback:
            module.traceback = STANDIN  # type: ignore[attr-defined]
            changed.append(name)
    return changed


def uninstall() -> None:
    for name in SDK_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "traceback", None) is STANDIN:
            module.traceback = traceback  # type: ignore[attr-defined]
