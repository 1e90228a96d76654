"""Queue depth on OpenTelemetry metrics: how many items wait in an app's queue.

::

    from otel_monitor import queues

    queues.watch_queue("order_emails", outbox.qsize)   # read at every metric export
    queues.unwatch_queue("order_emails")               # when the queue goes away

Each watched queue is read when the SDK collects metrics (an observable gauge,
``monitor.queue.depth``, one point per ``monitor.queue.name``), so watching
costs nothing between exports and needs no thread of its own.  The generated
rule ``QueueDepthHigh`` fires when a queue stays above
:data:`otel_monitor.alerting.rules.QUEUE_DEPTH_CRITICAL` items, and the console
shows each queue's depth on the overview.

Queue names are bounded metric attributes: lowercase words
(``[a-z][a-z0-9_]*``, 64 characters at most), at most :data:`MAX_QUEUES` of
them.  A bad name is logged once and ignored; a depth function that raises or
returns something other than a finite number of 0 or more is logged once and
its point left out of that export.  Like every helper of ours, these never
raise into the app.
"""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Callable, Iterable
from typing import Any

from opentelemetry import metrics as metrics_api
from opentelemetry.metrics import CallbackOptions, Observation

from otel_monitor import semconv

_log = logging.getLogger("otel_monitor")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_QUEUES = 100
METER_NAME = "otel_monitor.queues"

_lock = threading.Lock()
_queues: dict[str, Callable[[], Any]] = {}
# One gauge per meter provider (the global one, or one a test or app passes).
_gauges: dict[int, Any] = {}
_reported: set[str] = set()


def _problem(message: str) -> None:
    """Log a misuse once per message: a depth function failing at every export must not flood the log."""
    if message not in _reported and len(_reported) < 1000:
        _reported.add(message)
        _log.error("otel-monitor queues: %s", message)


def watch_queue(name: str, depth: Callable[[], float], *, meter_provider: Any = None) -> None:
    """Report ``depth()`` as the depth of queue ``name`` at every metric export.

    Watching a name again replaces its function.  ``meter_provider``: the
    global one when None (the launcher's, once configured).
    """
    from otel_monitor.guard import guarded

    with guarded("queues.watch_queue"):
        if not isinstance(name, str) or not _NAME.match(name):
            _problem(f"watch_queue({name!r}): a queue name is lowercase letters, digits and _ (64 at most); ignored")
            return
        if not callable(depth):
            _problem(f"watch_queue({name!r}, {depth!r}): the depth is a function returning the items waiting; ignored")
            return
        with _lock:
            if name not in _queues and len(_queues) >= MAX_QUEUES:
                _problem(f"watch_queue({name!r}): already {MAX_QUEUES} queues watched; ignored")
                return
            _queues[name] = depth
            key = id(meter_provider) if meter_provider is not None else 0
            if key not in _gauges:
                meter = metrics_api.get_meter(METER_NAME, meter_provider=meter_provider)
                _gauges[key] = meter.create_observable_gauge(
                    semconv.METRIC_QUEUE_DEPTH,
                    callbacks=[_observe],
                    unit="{item}",
                    description="Items waiting in the app's queues, by monitor.queue.name.",
                )


def unwatch_queue(name: str) -> None:
    """Stop reporting queue ``name`` (unknown names are ignored)."""
    with _lock:
        _queues.pop(name, None)


def watched() -> list[str]:
    """The names of the queues watched now."""
    with _lock:
        return sorted(_queues)


def _observe(_options: CallbackOptions) -> Iterable[Observation]:
    """The SDK's collection calls this: one point per queue, never an exception."""
    with _lock:
        queues = list(_queues.items())
    out = []
    for name, depth in queues:
        try:
            value = depth()
        except Exception as exc:  # noqa: BLE001 - a broken depth function must not break the export
            _problem(f"the depth function of queue {name!r} raised {type(exc).__name__}: {exc}; no point this time")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            _problem(f"queue {name!r}: the depth {value!r} is not a finite number of 0 or more; no point this time")
            continue
        out.append(Observation(float(value), {semconv.MONITOR_QUEUE_NAME: name}))
    return out
