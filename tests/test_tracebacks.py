"""Tracebacks formatted once per error and per error site, shared by the log record and the span."""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from otel_monitor.fast import tracebacks as sdk_tracebacks
from otel_monitor.pipeline import tracebacks
from tests.apps import error_sites

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
