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
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_log = logging.getLogger("otel_monitor")
_lock = threading.Lock()
COUNTS: Counter[str] = Counter()
_counter: Any = None


def _raise_in_tests() -> bool:
    return os.environ.get("OTEL_MONITOR_RAISE_INTERNAL_ERRORS", "").lower() == "true"


def bind_meter(meter: Any) -> None:
    """Report failures as ``monitor.sdk.internal_errors`` on this meter from now on."""
    global _counter
    from . import semconv

    _counter = meter.create_counter(
        semconv.METRIC_SELF_INTERNAL_ERRORS, unit="{error}",
        description="Failures inside otel-monitor that were contained and not raised into the app.")


def internal_error(component: str, exc: BaseException) -> None:
    """Record a contained failure of ``component``: log the first one, count all."""
    with _lock:
        COUNTS[component] += 1
        first = COUNTS[component] == 1
    if first:
        _log.error("otel-monitor: %s failed; the app is unaffected, further failures of it are only counted",
                   component, exc_info=(type(exc), exc, exc.__traceback__))
    counter = _counter
    if counter is not None:
        try:
            from . import semconv

            counter.add(1, {semconv.MONITOR_COMPONENT: component})
        except Exception:  # noqa: BLE001 - counting must never fail the app
            pass
    if _raise_in_tests():
        raise exc


@contextmanager
def guarded(component: str) -> Iterator[None]:
    """Run a block of our code; contain and report anything it raises."""
    try:
        yield
    except Exception as exc:  # noqa: BLE001
        internal_error(component, exc)


def reset_for_tests() -> None:
    with _lock:
        COUNTS.clear()
