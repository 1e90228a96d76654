"""An export waiting out a backoff when the process exits gets its retry: a receiver that came back in the
meantime (a collector restarted just before the app stops) still receives the batch."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry.exporter.http.transport._base import BaseHTTPResult, BaseHTTPTransport
from opentelemetry.exporter.otlp.common.http import _OTLPHTTPClient
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_monitor.pipeline import exporters


@dataclass(frozen=True)
class _Result(BaseHTTPResult):
    status_code: int | None = None
    reason: str | None = None
    error: Exception | None = None

    def content(self) -> bytes:
        return b""

    def headers(self) -> Mapping[str, str]:
        return {}


class _Receiver(BaseHTTPTransport):
    """Refuses connections until ``back`` is set, then answers 200; counts what it received."""

    def __init__(self) -> None:
        self.back = threading.Event()
        self.refused = threading.Event()
        self.received = 0

    def request(self, method: str, url: str, **kwargs: Any) -> BaseHTTPResult:
        if not self.back.is_set():
            self.refused.set()
            return _Result(error=ConnectionRefusedError("refused"))
        self.received += 1
        return _Result(status_code=200, reason="OK")

    def is_connection_error(self, exception: Exception | None) -> bool:
        return isinstance(exception, ConnectionError)

    def close(self) -> None:
        pass


class _ClientExporter(SpanExporter):
    """A span exporter on the SDK's OTLP/HTTP client, its retries and backoff (as the OTLP exporters are)."""

    def __init__(self, client: _OTLPHTTPClient) -> None:
        self.client = client

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        return SpanExportResult.SUCCESS if self.client.export(b"spans").success else SpanExportResult.FAILURE

    def shutdown(self) -> None:
        pass


@pytest.fixture
def exiting() -> Iterator[threading.Event]:
    yield exporters.EXITING
    exporters.EXITING.clear()


def _export_in_backoff(receiver: _Receiver) -> tuple[_OTLPHTTPClient, dict[str, Any], threading.Thread]:
    """An export through CountingSpanExporter, refused once and now waiting (about 1 s) to retry."""
    client = _OTLPHTTPClient(receiver, "http://collector:4318/v1/traces", "spans", timeout=10.0, jitter=0.0)
    outcome: dict[str, Any] = {}
    exporter = exporters.CountingSpanExporter(_ClientExporter(client))
    thread = threading.Thread(target=lambda: outcome.update(result=exporter.export(["a", "b", "c"])))
    thread.start()
    assert receiver.refused.wait(10)
    return client, outcome, thread


def test_an_export_cut_short_by_the_exit_is_tried_once_more(exiting: threading.Event) -> None:
    """The receiver is back, then the exit flush begins and ends the backoff: the batch is sent, not dropped."""
    receiver = _Receiver()
    client, outcome, thread = _export_in_backoff(receiver)
    before = exporters.DROPPED.counts["traces"]
    receiver.back.set()
    exiting.set()  # what the exit flush does first, then it ends every client's backoff
    client._shutdown_event.set()  # the SDK client's shutdown event, as the exit flush sets it
    thread.join(10)
    assert outcome["result"] is SpanExportResult.SUCCESS
    assert receiver.received == 1
    assert exporters.DROPPED.counts["traces"] == before


def test_the_final_attempt_is_one_and_a_failure_is_counted(exiting: threading.Event) -> None:
    """With the receiver still down the final attempt fails at once, and the batch is counted as dropped."""
    receiver = _Receiver()
    client, outcome, thread = _export_in_backoff(receiver)
    before = exporters.DROPPED.counts["traces"]
    exiting.set()
    client._shutdown_event.set()  # the SDK client's shutdown event, as the exit flush sets it
    thread.join(10)
    assert not thread.is_alive()
    assert outcome["result"] is SpanExportResult.FAILURE
    assert exporters.DROPPED.counts["traces"] - before == 3
