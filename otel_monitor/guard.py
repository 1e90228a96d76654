"""Guarding the host app from our own failures.

Every callback of ours that runs inside the application (span and log
processors, exporter wrappers, rule evaluation, instrumentation hooks) runs
behind :func:`guarded` or :func:`internal_error`: the first failure of each
component is logged once with its traceback, every failure is counted (in
:data:`COUNTS` and in the ``monitor.sdk.internal_errors`` metric), and nothing
is raised into the app.  When ``OTEL_MONITOR_RAISE_INTERNAL_ERRORS=true``
(our test suite sets it) failures are re-raised so bugs show.
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_log = logging.getLogger("otel_monitor")
_lock = threading.Lock()
COUNTS: Counter[str] = Counter()  # contained failures by component, also those before configuration
# Our objects' locks that a thread of a pre-fork master may hold at the instant of fork.
_RENEWED_AFTER_FORK: weakref.WeakKeyDictionary[Any, tuple[str, ...]] = weakref.WeakKeyDictionary()


def renew_after_fork(owner: Any, *names: str) -> None:
    """Give ``owner`` fresh locks in its attributes ``names`` in a forked child (:func:`renew_locks`)."""
    _RENEWED_AFTER_FORK[owner] = names


def renew_locks() -> None:
    """After fork, in the child: fresh locks for the guard and every registered owner, none of them taken.

    A lock the parent's threads held at the instant of fork stays held in the
    child, where no thread will ever release it.
    """
    global _lock
    _lock = threading.Lock()
    for owner, names in list(_RENEWED_AFTER_FORK.items()):
        for name in names:
            setattr(owner, name, threading.Lock())


def _raise_in_tests() -> bool:
    return os.environ.get("OTEL_MONITOR_RAISE_INTERNAL_ERRORS", "").lower() == "true"


def internal_errors_counter(meter: Any) -> Any:
    """The ``monitor.sdk.internal_errors`` counter on ``meter``; failures are counted on the runtime's."""
    from otel_monitor import semconv

    return meter.create_counter(
        semconv.METRIC_SELF_INTERNAL_ERRORS,
        unit="{error}",
        description="Failures inside otel-monitor that were contained and not raised into the app.",
    )


def internal_error(component: str, exc: BaseException) -> None:
    """Record a contained failure of ``component``: log the first one, count all."""
    with _lock:
        COUNTS[component] += 1
        first = COUNTS[component] == 1
    if first:
        _log.error(
            "otel-monitor: %s failed; the app is unaffected, further failures of it are only counted",
            component,
            exc_info=(type(exc), exc, exc.__traceback__),
        )
    from otel_monitor import runtime

    counter = runtime.current().internal_errors
    if counter is not None:
        try:
            from otel_monitor import semconv

            counter.add(1, {semconv.MONITOR_COMPONENT: component})
        except Exception:  # noqa: BLE001 - counting must never fail the app
            pass
    if _raise_in_tests():
        raise exc


@contextmanager
def guarded(component: str) -> Iterator[None]:
    """Run a block of our code; contain and report anything it raises.

    :class:`~otel_monitor.config.settings.ConfigError` passes: it is raised only in
    strict mode, where stopping the process is what the user asked for.
    """
    from otel_monitor.config.settings import ConfigError

    try:
        yield
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001
        internal_error(component, exc)


def reset_for_tests() -> None:
    with _lock:
        COUNTS.clear()


class PendingProcessor:
    """Does nothing: what a guarded processor runs until the pipeline it was made for exists."""

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        pass

    def on_emit(self, log_record: Any) -> None:
        pass

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _Guarded:
    """Shared part of the guarded processors: identity, shutdown and flush."""

    kind = "processor"

    def __init__(self, inner: Any = None) -> None:
        self.run(PendingProcessor() if inner is None else inner)

    def run(self, inner: Any) -> None:
        """Run ``inner`` from now on.

        The configurator hands the SDK guarded processors before the providers
        our processors need exist, and gives each its processor once they do.
        """
        self.inner = inner
        self._name = f"{self.kind} {type(inner).__name__}"

    def shutdown(self) -> None:
        with guarded(self._name):
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        try:
            return bool(self.inner.force_flush(timeout_millis))
        except Exception as exc:  # noqa: BLE001
            internal_error(self._name, exc)
            return False


class GuardedSpanProcessor(_Guarded):
    """Runs a span processor of ours so that nothing it raises reaches the app.

    Contract of every span processor (SDK ``SpanProcessor``): called
    synchronously on the thread that starts/ends the span, must not block,
    must not raise. This wrapper enforces the last point.
    """

    kind = "span processor"

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        try:
            self.inner.on_start(span, parent_context=parent_context)
        except Exception as exc:  # noqa: BLE001
            internal_error(self._name, exc)

    def _on_ending(self, span: Any) -> None:
        on_ending = getattr(self.inner, "_on_ending", None)  # private: the SDK's optional processor hook
        if on_ending is None:
            return
        try:
            on_ending(span)
        except Exception as exc:  # noqa: BLE001
            internal_error(self._name, exc)

    def on_end(self, span: Any) -> None:
        try:
            self.inner.on_end(span)
        except Exception as exc:  # noqa: BLE001
            internal_error(self._name, exc)


class GuardedLogRecordProcessor(_Guarded):
    """Runs a log record processor of ours so that nothing it raises reaches the app."""

    kind = "log processor"

    def on_emit(self, log_record: Any) -> None:
        try:
            self.inner.on_emit(log_record)
        except Exception as exc:  # noqa: BLE001
            internal_error(self._name, exc)

    # Older SDKs call emit().
    emit = on_emit

    def enabled(self, **kwargs: Any) -> bool:
        # Ours only enrich records; whether a record is wanted is the exporters' call.
        return False
