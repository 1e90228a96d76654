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

A log record's stack trace is also left to export time where nothing
could tell the difference (:func:`defer_log_stacktraces`): a record that is
never exported (dropped in a storm, no log exporter) is never formatted,
and the one that is exported is formatted in the export thread, off the
request.

Switch: ``OTEL_MONITOR_LEAN_TRACEBACKS=false``.
"""

from __future__ import annotations

import importlib
import threading
import traceback
from typing import Any

from otel_monitor import patching
from otel_monitor.pipeline.tracebacks import format_exception as _format_once
from otel_monitor.pipeline.tracebacks import remember_traceback

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
    def format_exception(
        exc: Any, /, value: Any = _SENTINEL, tb: Any = _SENTINEL, limit: int | None = None, chain: bool = True
    ) -> list[str]:
        if value is _SENTINEL and tb is _SENTINEL and isinstance(exc, BaseException):
            if limit is None and chain:
                return [_format_once(exc)]
            return traceback.format_exception(exc, limit=limit, chain=chain)
        if limit is None and chain and isinstance(value, BaseException) and tb is value.__traceback__:
            return [_format_once(value)]
        given = {key: v for key, v in (("value", value), ("tb", tb)) if v is not _SENTINEL}
        return traceback.format_exception(exc, **given, limit=limit, chain=chain)


STANDIN = _TracebackModule()
_EXCEPTIONS_MODULE = "opentelemetry.sdk._logs._internal._exceptions"
_emitting = threading.local()  # .defer: the log record being emitted gets its stack trace at export


def _exception_attributes(exception: BaseException) -> dict[str, Any]:
    """The SDK's ``_get_exception_attributes``, without the stack trace while a deferring logger emits."""
    if not getattr(_emitting, "defer", False):
        return _SDK_EXCEPTION_ATTRIBUTES(exception)
    remember_traceback(exception)  # formatted at export as it stands now, where the record is emitted
    cls = type(exception)
    module, name = cls.__module__, cls.__qualname__
    return {
        "exception.type": f"{module}.{name}" if module and module != "builtins" else name,
        "exception.message": str(exception),
    }


_SDK_EXCEPTION_ATTRIBUTES: Any = None


def exported_by_us(processors: Any) -> bool:
    """Every processor is a guarded one of ours (they export nothing) or exports through our log exporter wrapper."""
    from otel_monitor.guard import GuardedLogRecordProcessor
    from otel_monitor.pipeline.processors import EnrichingLogExporter, LateBoundLogExporter

    for processor in processors:
        if isinstance(processor, GuardedLogRecordProcessor):
            continue
        batch = getattr(processor, "_batch_processor", None)
        exporter = getattr(batch, "_exporter", None) if batch is not None else getattr(processor, "_exporter", None)
        if not isinstance(exporter, (LateBoundLogExporter, EnrichingLogExporter)):
            return False
    return True


def defer_log_stacktraces(provider: Any, exported_by_us: Any = exported_by_us) -> bool:
    """Loggers of ``provider`` leave their records' stack traces to export time, while nothing else can see them.

    ``exported_by_us(processors)`` says whether every log record processor
    of the provider is one whose exports go through otel-monitor's log
    exporter wrapper (which adds the stack trace from the record's live
    exception).  It is asked again whenever the provider's processors
    change: a processor of the app's own keeps every record complete at
    emit.  Returns False (nothing changed) for an SDK of another layout.
    """
    global _SDK_EXCEPTION_ATTRIBUTES
    try:
        exceptions: Any = importlib.import_module(_EXCEPTIONS_MODULE)
        multi = provider._multi_log_record_processor  # noqa: SLF001 - compat: checked here
        multi._log_record_processors  # noqa: B018, SLF001
        original = exceptions._get_exception_attributes  # noqa: SLF001
    except (ImportError, AttributeError):
        return False
    if original is not _exception_attributes:
        _SDK_EXCEPTION_ATTRIBUTES = original
        patching.replace(exceptions, "_get_exception_attributes", _exception_attributes)
    verdict: list[Any] = [None, False]  # (the processors tuple judged, the verdict)

    def deferring() -> bool:
        processors = multi._log_record_processors  # noqa: SLF001
        if processors is not verdict[0]:
            verdict[:] = [processors, bool(exported_by_us(processors))]
        return bool(verdict[1])

    get_logger = provider.get_logger

    def get_deferring_logger(*args: Any, **kwargs: Any) -> Any:
        logger = get_logger(*args, **kwargs)
        emit = getattr(logger, "emit", None)
        if emit is None or getattr(emit, "otel_monitor_defers", False):
            return logger

        def emit_deferring(*emit_args: Any, **emit_kwargs: Any) -> None:
            if not deferring():
                emit(*emit_args, **emit_kwargs)
                return
            _emitting.defer = True
            try:
                emit(*emit_args, **emit_kwargs)
            finally:
                _emitting.defer = False

        emit_deferring.__dict__["otel_monitor_defers"] = True
        patching.replace(logger, "emit", emit_deferring)
        return logger

    patching.replace(provider, "get_logger", get_deferring_logger)
    return True


def install() -> list[str]:
    """Point the SDK's formatting at :data:`STANDIN`; returns the modules changed (those of the known layout)."""
    changed = []
    for name in SDK_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        if getattr(module, "traceback", None) is traceback:
            patching.replace(module, "traceback", STANDIN)
            changed.append(name)
    return changed


def uninstall() -> None:
    for name in SDK_MODULES:
        module = importlib.import_module(name)
        if getattr(module, "traceback", None) is STANDIN:
            patching.restore(module, "traceback")
