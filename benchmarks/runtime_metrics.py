"""Cost of the runtime metrics: microseconds per metric collection.

    python -m benchmarks.runtime_metrics [collections]

Collects an in-memory reader with and without the runtime metrics and
prints the difference per collection.
"""

from __future__ import annotations

import statistics
import sys
import time

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from otel_monitor.config.settings import resolve
from otel_monitor.pipeline.runtime_metrics import start_runtime_metrics, stop_runtime_metrics


def _per_collection(reader: InMemoryMetricReader, count: int) -> float:
    """Median over 5 batches of the microseconds one collection takes."""
    reader.get_metrics_data()  # warm up: first-call imports and caches
    batches = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count):
            reader.get_metrics_data()
        batches.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(batches)


def main(argv: list[str]) -> int:
    count = int(argv[0]) if argv else 200
    baseline_reader = InMemoryMetricReader()
    MeterProvider(metric_readers=[baseline_reader])
    baseline = _per_collection(baseline_reader, count)

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    start_runtime_metrics(provider, resolve(environ={}))
    with_runtime = _per_collection(reader, count)
    stop_runtime_metrics()
    points = sum(len(m.data.data_points) for rm in reader.get_metrics_data().resource_metrics
                 for sm in rm.scope_metrics for m in sm.metrics)
    print(f"empty provider:        {baseline:8.1f} us per collection")
    print(f"with runtime metrics:  {with_runtime:8.1f} us per collection ({points} points)")
    print(f"runtime metrics cost:  {with_runtime - baseline:8.1f} us per collection"
          f" = {(with_runtime - baseline) / 60e6:.2e} of one core at a 60 s export interval")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
