"""Tracebacks formatted once per error and per error site, shared by the log record and the span."""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LogRecordProcessor
from opentelemetry.sdk._logs.export import (
    BatchLogRecordProcessor,
    InMemoryLogRecordExporter,
    SimpleLogRecordProcessor,
)
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_monitor.fast import tracebacks as sdk_tracebacks
from otel_monitor.guard import GuardedLogRecordProcessor
from otel_monitor.pipeline import tracebacks
from otel_monitor.pipeline.processors import EnrichingLogExporter, _scrubbed_with_stacktrace
from otel_monitor.semantics.errors import ErrorClassifier
from otel_monitor.semantics.redaction import Redactor
from tests.support.apps import error_sites

STACKTRACE = "exception.stacktrace"


@pytest.fixture
def installed() -> Iterator[None]:
    sdk_tracebacks.install()
    yield
    sdk_tracebacks.uninstall()


@pytest.fixture
def format_tb_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every time the traceback module formats a traceback's frames for otel-monitor."""
    calls: list[Any] = []
    real = traceback.format_tb

    def counting(tb: Any, limit: int | None = None) -> list[str]:
        calls.append(tb)
        return real(tb, limit)

    monkeypatch.setattr(tracebacks.traceback, "format_tb", counting)
    tracebacks.clear()
    return calls


@pytest.mark.parametrize("site", error_sites.SITES, ids=lambda site: site.__name__)
def test_text_is_the_traceback_modules(site: Any) -> None:
    """The same text as traceback.format_exception, the first time and from the kept site."""
    expected = "".join(traceback.format_exception(error_sites.caught(site)))
    assert tracebacks.format_exception(error_sites.caught(site)) == expected
    assert tracebacks.format_exception(error_sites.caught(site)) == expected


def test_one_formatting_per_site(format_tb_calls: list[Any]) -> None:
    """Ten errors at one site (a cause and its consequence each) format its two tracebacks once."""
    for _ in range(10):
        tracebacks.format_exception(error_sites.caught(error_sites.raise_from))
    assert len(format_tb_calls) == 2


def test_kept_sites_are_bounded(monkeypatch: pytest.MonkeyPatch, format_tb_calls: list[Any]) -> None:
    """Past the limit a new site is formatted each time and not kept."""
    monkeypatch.setattr(tracebacks, "SITE_LIMIT", 1)
    tracebacks.format_exception(error_sites.caught(error_sites.raise_timeout))
    for _ in range(3):
        tracebacks.format_exception(error_sites.caught(error_sites.raise_bare))
    assert len(tracebacks._sites) == 1
    assert len(format_tb_calls) == 4


def test_log_record_and_span_event_share_one_formatting(installed: None, format_tb_calls: list[Any]) -> None:
    """The SDK's log record and span exception event of one error carry one formatting of it."""
    logs, spans = InMemoryLogRecordExporter(), InMemorySpanExporter()
    logger_provider = LoggerProvider()
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(logs))
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    exc = error_sites.caught(error_sites.raise_timeout)
    with tracer_provider.get_tracer("t").start_as_current_span("request") as span:
        span.record_exception(exc)
        logger_provider.get_logger("t").emit(body="failed", exception=exc)
    expected = "".join(traceback.format_exception(exc))
    (record,) = logs.get_finished_logs()
    (event,) = spans.get_finished_spans()[0].events
    assert record.log_record.attributes[STACKTRACE] == expected
    assert event.attributes[STACKTRACE] == expected
    assert len(format_tb_calls) == 1


def test_other_arguments_go_to_the_traceback_module(installed: None) -> None:
    """A limit, no chain or another traceback: the traceback module's own answer."""
    exc = error_sites.caught(error_sites.raise_from)
    standin = sdk_tracebacks.STANDIN
    assert standin.format_exception(exc, limit=1) == traceback.format_exception(exc, limit=1)
    assert standin.format_exception(exc, chain=False) == traceback.format_exception(exc, chain=False)
    assert standin.format_exception(type(exc), exc, None) == traceback.format_exception(type(exc), exc, None)
    assert standin.format_exc is traceback.format_exc


class _Seen(LogRecordProcessor):
    """Keeps the attributes each record has when it is emitted."""

    def __init__(self) -> None:
        self.attributes: list[dict[str, Any]] = []

    def on_emit(self, log_record: Any) -> None:
        self.attributes.append(dict(log_record.log_record.attributes or {}))

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


@pytest.fixture
def deferring() -> Iterator[Callable[[LoggerProvider], bool]]:
    """defer_log_stacktraces, with the SDK's own exception attributes put back afterwards."""
    module = importlib.import_module(sdk_tracebacks._EXCEPTIONS_MODULE)
    original = module._get_exception_attributes
    yield sdk_tracebacks.defer_log_stacktraces
    module._get_exception_attributes = original


def _ours(exporter: InMemoryLogRecordExporter) -> SimpleLogRecordProcessor:
    return SimpleLogRecordProcessor(EnrichingLogExporter(exporter, Redactor(), ErrorClassifier(), None))


def test_deferred_stacktrace_is_added_at_export(deferring: Any, format_tb_calls: list[Any]) -> None:
    """Through our exporter wrapper the record leaves with the traceback module's text, formatted there."""
    exported, seen = InMemoryLogRecordExporter(), _Seen()
    provider = LoggerProvider()
    provider.add_log_record_processor(GuardedLogRecordProcessor(seen))
    provider.add_log_record_processor(_ours(exported))
    assert deferring(provider)
    exc = error_sites.caught(error_sites.raise_timeout)
    provider.get_logger("fastapi").emit(body="Unhandled exception in FastAPI request", exception=exc)
    assert STACKTRACE not in seen.attributes[0]
    assert seen.attributes[0]["exception.type"] == "TimeoutError"
    (record,) = exported.get_finished_logs()
    assert record.log_record.attributes[STACKTRACE] == "".join(traceback.format_exception(exc))
    assert len(format_tb_calls) == 1


def test_nothing_exported_nothing_formatted(deferring: Any, format_tb_calls: list[Any]) -> None:
    """A record no exporter takes is never formatted."""
    seen = _Seen()
    provider = LoggerProvider()
    provider.add_log_record_processor(GuardedLogRecordProcessor(seen))
    assert deferring(provider)
    provider.get_logger("fastapi").emit(body="failed", exception=error_sites.caught(error_sites.raise_timeout))
    assert STACKTRACE not in seen.attributes[0]
    assert format_tb_calls == []


def test_a_processor_of_the_apps_keeps_records_complete_at_emit(deferring: Any) -> None:
    """Once the app adds a processor of its own, records carry their stack trace at emit again."""
    exported, theirs = InMemoryLogRecordExporter(), InMemoryLogRecordExporter()
    provider = LoggerProvider()
    provider.add_log_record_processor(_ours(exported))
    assert deferring(provider)
    logger = provider.get_logger("fastapi")
    provider.add_log_record_processor(SimpleLogRecordProcessor(theirs))
    exc = error_sites.caught(error_sites.raise_timeout)
    logger.emit(body="failed", exception=exc)
    expected = "".join(traceback.format_exception(exc))
    assert theirs.get_finished_logs()[0].log_record.attributes[STACKTRACE] == expected
    assert exported.get_finished_logs()[0].log_record.attributes[STACKTRACE] == expected


def test_deferred_stacktrace_is_the_one_at_emit(deferring: Any) -> None:
    """Frames the exception gathers after the record is emitted (re-raised further out) are not in it."""
    exported = InMemoryLogRecordExporter()
    processor = BatchLogRecordProcessor(
        EnrichingLogExporter(exported, Redactor(), ErrorClassifier(), None), schedule_delay_millis=60_000
    )
    provider = LoggerProvider()
    provider.add_log_record_processor(processor)
    assert deferring(provider)
    logger = provider.get_logger("fastapi")
    expected = []

    def handler() -> None:
        try:
            error_sites.raise_timeout()
        except TimeoutError as exc:
            logger.emit(body="failed", exception=exc)
            expected.append("".join(traceback.format_exception(exc)))
            raise

    with pytest.raises(TimeoutError) as caught:
        handler()
    processor.force_flush()
    (record,) = exported.get_finished_logs()
    assert record.log_record.attributes[STACKTRACE] == expected[0]
    assert "".join(traceback.format_exception(caught.value)) != expected[0]  # it did gather a frame since


def test_a_repeated_stacktrace_is_scrubbed_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """The same stack trace text is scanned for secrets once; each record is scrubbed as a whole scan would."""
    redactor = Redactor()
    scans: list[str] = []
    real_text = redactor.text

    def counting(value: str) -> str:
        scans.append(value)
        return real_text(value)

    monkeypatch.setattr(redactor, "text", counting)
    secret = "password=hunter2hunter2"
    stacktrace = "".join(traceback.format_exception(error_sites.caught(error_sites.raise_timeout))) + secret
    for message in ("first", "second", "third"):
        attributes = {
            "exception.type": "TimeoutError",
            "exception.message": message,
            "exception.stacktrace": stacktrace,
            "http.route": "/fail",
        }
        assert _scrubbed_with_stacktrace(redactor, attributes) == Redactor().attributes(attributes)
    assert scans.count(stacktrace) == 1
    assert "hunter2" not in str(_scrubbed_with_stacktrace(redactor, attributes))
