"""Runtime metrics of the process: CPU, memory, GC, threads, open file descriptors.

Reuses ``opentelemetry-instrumentation-system-metrics`` restricted to the
process-level instruments, under their semantic-convention names:

==========================================  ================================
``process.cpu.time``                        user / system seconds (counter)
``process.cpu.utilization``                 user / system share of one core
``process.memory.usage``                    resident set size, bytes
``process.memory.virtual``                  virtual memory, bytes
``process.thread.count``                    threads
``process.open_file_descriptor.count``      open file descriptors (POSIX)
``cpython.gc.collections``                  GC runs per generation
``cpython.gc.collected_objects``            objects collected per generation
==========================================  ================================

The host-wide ``system.*`` instruments are left to the collector's
``hostmetrics`` receiver, which sees the host once rather than once per worker.
The instruments are observable: they are read at each metric export
(``OTEL_METRIC_EXPORT_INTERVAL``, 60 s by default), costing about 0.6 ms
of CPU each time on a small VM, 1e-5 of a core at that interval
(``python -m benchmarks.runtime_metrics``).
"""

from __future__ import annotations

import sys
from typing import Any

from otel_monitor.guard import guarded

PROCESS_METRICS: dict[str, list[str] | None] = {
    "process.cpu.time": ["user", "system"],
    "process.cpu.utilization": ["user", "system"],
    "process.memory.usage": None,
    "process.memory.virtual": None,
    "process.thread.count": None,
    "cpython.gc.collections": None,
    "cpython.gc.collected_objects": None,
}
if sys.platform != "win32":  # psutil counts file descriptors on POSIX only
    PROCESS_METRICS["process.open_file_descriptor.count"] = None


def start_runtime_metrics(meter_provider: Any, settings: Any) -> None:
    """Report the process metrics above on ``meter_provider`` when ``OTEL_MONITOR_RUNTIME_METRICS`` is on.

    Once per process: the instrumentor is a singleton, a second call is ignored.
    """
    if not getattr(settings, "runtime_metrics", True):
        return
    with guarded("runtime metrics"):
        from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

        instrumentor = SystemMetricsInstrumentor(config=dict(PROCESS_METRICS))
        if not instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.instrument(meter_provider=meter_provider)


def stop_runtime_metrics() -> None:
    """Allow :func:`start_runtime_metrics` again (tests); instruments already created stay on their provider."""
    from opentelemetry.instrumentation.system_metrics import SystemMetricsInstrumentor

    instrumentor = SystemMetricsInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.uninstrument()
