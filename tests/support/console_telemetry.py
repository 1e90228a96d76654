"""Real telemetry for the console tests: the SDK's own OTLP/HTTP exporters, pointed at a console."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from otel_monitor import semconv
from otel_monitor.semantics.slo import SLOs

CONFIG = """\
funnels:
  purchase:
    steps: [signup, first_browse, first_add_to_cart, first_purchase]
slos:
  operations:
    checkout:
      latency: {warning: 1.0, critical: 2.5}
"""


def get(url: str, token: str | None = None) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def post(
    url: str, body: bytes, content_type: str = "application/x-protobuf", headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": content_type, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def resource(service: str, instance: str = "i-1") -> Resource:
    return Resource.create({semconv.SERVICE_NAME: service, semconv.SERVICE_INSTANCE_ID: instance})


@contextmanager
def tracer(url: str, service: str = "shop", headers: dict[str, str] | None = None) -> Iterator[Any]:
    provider = TracerProvider(resource=resource(service))
    provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{url}/v1/traces", headers=headers)))
    try:
        yield provider.get_tracer("console-tests")
    finally:
        provider.shutdown()


@contextmanager
def meter(url: str, service: str = "shop", instance: str = "i-1") -> Iterator[tuple[Any, MeterProvider]]:
    """A meter exporting cumulative points on ``provider.force_flush()``, buckets as otel-monitor sets them."""
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=f"{url}/v1/metrics"), export_interval_millis=3_600_000
    )
    view = View(
        instrument_name=semconv.METRIC_OPERATION_DURATION,
        aggregation=ExplicitBucketHistogramAggregation(list(SLOs().buckets)),
    )
    provider = MeterProvider(resource=resource(service, instance), metric_readers=[reader], views=[view])
    try:
        yield provider.get_meter("console-tests"), provider
    finally:
        provider.shutdown()


@contextmanager
def logger(url: str, service: str = "shop") -> Iterator[Any]:
    provider = LoggerProvider(resource=resource(service))
    provider.add_log_record_processor(SimpleLogRecordProcessor(OTLPLogExporter(endpoint=f"{url}/v1/logs")))
    try:
        yield provider.get_logger("console-tests")
    finally:
        provider.shutdown()


def record_calls(histogram: Any, operation: str, durations: list[float], category: str | None = None) -> None:
    attrs: dict[str, str] = {semconv.MONITOR_OPERATION: operation}
    if category:
        attrs |= {semconv.MONITOR_ERROR_CATEGORY: category, semconv.ERROR_TYPE: "RuntimeError"}
    for d in durations:
        histogram.record(d, attrs)


def milestone(log: Any, journey: str, step: str, user: str) -> None:
    log.emit(
        event_name=semconv.EVENT_JOURNEY_MILESTONE,
        attributes={
            semconv.MONITOR_JOURNEY_NAME: journey,
            semconv.MONITOR_JOURNEY_STEP: step,
            semconv.ENDUSER_PSEUDO_ID: user,
        },
    )


def send_calls(
    url: str,
    operation: str,
    durations: list[float],
    failed: list[float] = (),  # type: ignore[assignment]
    category: str = "dependency",
    instance: str = "i-1",
) -> None:
    """One process's ``monitor.operation.duration`` for successful and failed calls, exported once."""
    with meter(url, instance=instance) as (m, provider):
        hist = m.create_histogram(semconv.METRIC_OPERATION_DURATION, unit="s")
        record_calls(hist, operation, durations)
        record_calls(hist, operation, list(failed), category=category)
        provider.force_flush()


CHROMIUM = "/usr/bin/chromium"


@contextmanager
def chromium_page(artifacts: Path) -> Iterator[Any]:
    """A headless Chromium page (Playwright); fails the caller on any JavaScript error once it is done."""
    from playwright.sync_api import sync_playwright

    artifacts.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        yield page
        browser.close()
        assert not errors, f"JavaScript errors: {errors}"
