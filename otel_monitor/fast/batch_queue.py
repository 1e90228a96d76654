"""Whether the SDK's batch processor is about to drop a record, read from its private queue.

The SDK's ``BatchLogRecordProcessor`` drops the oldest record when its queue
is full, and refuses new ones after shutdown, and only logs either. To count
each drop exactly when the SDK makes it, its queue must be read; the launcher
passes :func:`would_drop` to
:class:`~otel_monitor.pipeline.exporters.CountingBatchLogRecordProcessor`.
"""

from __future__ import annotations

from typing import Any


def would_drop(processor: Any) -> bool:
    """Whether ``processor`` (a ``BatchLogRecordProcessor``) drops the record it is given now."""
    batch = processor._batch_processor  # noqa: SLF001 - the SDK batch processor's queue
    # The SDK's BatchProcessor drops exactly then (compat: tests/unit/test_shutdown_drops.py).
    return bool(batch._shutdown or len(batch._queue) >= batch._max_queue_size)  # noqa: SLF001 - the SDK batch processor's queue
