"""Error logs are never lost silently: a full queue and an exit flush out of time are counted and said."""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_monitor.fast.batch_queue import would_drop
from otel_monitor.pipeline import exporters


class _Exporter(LogRecordExporter, SpanExporter):
    """Keeps what it is given; while ``hold`` is set, each export waits until it is cleared (or 30 s)."""

    def __init__(self, hold: bool = False) -> None:
        self.exported: list[Any] = []
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def export(self, batch: Sequence[Any]) -> Any:
        self.entered.set()
        self.release.wait(30)
        self.exported.extend(batch)
        return LogRecordExportResult.SUCCESS if batch and hasattr(batch[0], "log_record") else SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@pytest.fixture
def exit_flush(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Callable[[], None]]]:
    """bounded_shutdown without the process's SIGTERM handler, its exit handler unregistered afterwards."""
    monkeypatch.setattr(exporters, "_flush_on_sigterm", lambda flush: None)
    registered: list[Callable[[], None]] = []

    def make(providers: list[Any], timeout_s: float) -> Callable[[], None]:
        registered.append(exporters.bounded_shutdown(providers, timeout_s))
        return registered[-1]

    yield make
    for handler in registered:
        atexit.unregister(handler)


def _logger_provider(exporter: _Exporter, **options: Any) -> LoggerProvider:
    provider = LoggerProvider(shutdown_on_exit=False)
    provider.add_log_record_processor(
        exporters.CountingBatchLogRecordProcessor(exporters.CountingLogExporter(exporter), would_drop, **options)
    )
    return provider


def _emit_errors(provider: LoggerProvider, n: int) -> None:
    logger = provider.get_logger("app")
    for i in range(n):
        logger.emit(body=f"request {i} failed", severity_text="ERROR")


def test_full_queue_drops_are_counted() -> None:
    """An error storm larger than the queue: every record pushed out is counted in monitor.sdk.dropped."""
    exporter = _Exporter(hold=True)
    provider = _logger_provider(exporter, max_queue_size=8, max_export_batch_size=4, schedule_delay_millis=60_000)
    before = exporters.DROPPED.counts["logs"]
    _emit_errors(provider, 4)
    assert exporter.entered.wait(10)  # the first batch of four is in the exporter, held there
    _emit_errors(provider, 20)  # eight fit in the queue, twelve push older ones out
    assert exporters.DROPPED.counts["logs"] - before == 12
    exporter.release.set()
    provider.shutdown()
    assert len(exporter.exported) == 4 + 8


def test_logs_flush_at_exit_while_spans_are_slow(exit_flush: Any) -> None:
    """A span flush that takes the whole exit budget no longer keeps the error logs from leaving."""
    slow_spans = _Exporter(hold=True)
    tracer_provider = TracerProvider(shutdown_on_exit=False)
    tracer_provider.add_span_processor(BatchSpanProcessor(slow_spans, schedule_delay_millis=60_000))
    with tracer_provider.get_tracer("app").start_as_current_span("request"):
        pass
    logs = _Exporter()
    logger_provider = _logger_provider(logs, schedule_delay_millis=60_000)
    _emit_errors(logger_provider, 551)
    exit_flush([tracer_provider, logger_provider], 2.0)()
    slow_spans.release.set()
    assert len(logs.exported) == 551


def test_loss_at_exit_is_counted_and_said(exit_flush: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Records the exit flush cannot deliver in time are counted, and one line on stderr says how many."""
    stuck = _Exporter(hold=True)
    provider = _logger_provider(stuck, max_export_batch_size=100, schedule_delay_millis=60_000)
    before = exporters.DROPPED.counts["logs"]
    _emit_errors(provider, 551)
    exit_flush([provider], 0.5)()
    stuck.release.set()
    assert exporters.DROPPED.counts["logs"] - before == 551
    err = capsys.readouterr().err
    assert "exiting without 551 log records" in err
    assert "monitor.sdk.dropped" in err


class _FailingAfterHold(_Exporter):
    """Held like _Exporter, then fails: the receiver timed out."""

    def __init__(self) -> None:
        super().__init__(hold=True)
        self.finished = threading.Event()

    def export(self, batch: Sequence[Any]) -> Any:
        self.entered.set()
        self.release.wait(30)
        self.finished.set()
        return LogRecordExportResult.FAILURE


def test_an_export_in_flight_at_exit_is_counted_once(exit_flush: Any) -> None:
    """Records in an export still running at exit are counted then, and not again when it fails afterwards."""
    stuck = _FailingAfterHold()
    provider = _logger_provider(stuck, max_export_batch_size=600, schedule_delay_millis=60_000)
    before = exporters.DROPPED.counts["logs"]
    _emit_errors(provider, 551)
    exit_flush([provider], 0.5)()
    assert exporters.DROPPED.counts["logs"] - before == 551
    stuck.release.set()
    (processor,) = provider._multi_log_record_processor._log_record_processors
    worker = processor._batch_processor._worker_thread
    worker.join(10)  # the failed export has returned through the counting exporter
    assert not worker.is_alive()
    assert exporters.DROPPED.counts["logs"] - before == 551
