"""Redaction recall and precision over every path out of a real provider.

Each secret of ``tests/support/corpus/redaction_secrets.json`` (one kind each) is
planted in every exit path an app has: span names, span, event and link
attributes, event names, status descriptions, log bodies (plain and nested at
depth), log attributes (flat and nested), log event names, metric attributes,
resource attributes and query strings (percent-encoded).  Samples with a
``key`` are bare values under a secret key: they go only where a key exists,
and there the key's whole subtree must go.  The exported data (in-memory
exporters behind our pipeline, as the configurator wires it) is searched, also
percent-decoded.  Look-alikes of ``redaction_lookalikes.json`` must come out
unchanged on every path.  The figures are printed (``pytest -s``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import pytest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import InMemoryLogRecordExporter, SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Link, Status, StatusCode

from otel_monitor.config.file import EMPTY
from otel_monitor.config.settings import resolve
from otel_monitor.pipeline.exporters import RedactingMetricExporter
from otel_monitor.pipeline.processors import build_pipeline

CORPUS = Path(__file__).resolve().parents[1] / "support" / "corpus"
SECRETS: list[dict[str, Any]] = json.loads((CORPUS / "redaction_secrets.json").read_text())
LOOKALIKES: list[dict[str, Any]] = json.loads((CORPUS / "redaction_lookalikes.json").read_text())
RECALL_TARGET = 0.99
PRECISION_TARGET = 0.99


class _KeepMetrics(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.batches: list[Any] = []

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        self.batches.append(metrics_data)
        return MetricExportResult.SUCCESS

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        pass

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return True


def _plant(samples: list[dict[str, Any]]) -> dict[str, dict[int, Any]]:
    """Push every sample through every path; return what came out, per path and sample index."""
    resource_attributes: dict[str, Any] = {"service.name": "corpus"}
    for i, sample in enumerate(samples):
        resource_attributes[f"app.{i}.{sample.get('key', 'note')}"] = sample["text"]
    resource = Resource.create(resource_attributes)
    metric_sink = _KeepMetrics()
    tracer_provider = TracerProvider(resource=resource)
    logger_provider = LoggerProvider(resource=resource)
    reader = PeriodicExportingMetricReader(
        RedactingMetricExporter(metric_sink, lambda: pipeline.redactor), export_interval_millis=3_600_000
    )
    meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
    pipeline = build_pipeline(resolve({}, environ={}), EMPTY, meter_provider, logger_provider)
    span_sink, log_sink = InMemorySpanExporter(), InMemoryLogRecordExporter()
    for processor in pipeline.span_processors:
        tracer_provider.add_span_processor(processor)
    tracer_provider.add_span_processor(SimpleSpanProcessor(pipeline.wrap_span_exporter(span_sink)))
    logger_provider.add_log_record_processor(SimpleLogRecordProcessor(pipeline.wrap_log_exporter(log_sink)))
    tracer = tracer_provider.get_tracer("corpus")
    otel_logger = logger_provider.get_logger("corpus")
    std_logger = logging.getLogger("tests.redaction_corpus")
    std_logger.propagate = False
    handler = LoggingHandler(logger_provider=logger_provider)
    std_logger.addHandler(handler)
    counter = meter_provider.get_meter("corpus").create_counter("corpus.requests")
    try:
        with tracer.start_as_current_span("link target") as target:
            link_context = target.get_span_context()
        for i, sample in enumerate(samples):
            text, key = sample["text"], sample.get("key")
            attr_key = key or "app.note"
            link = Link(link_context, {"sample.id": i, attr_key: text})
            with tracer.start_as_current_span(text if key is None else "sample", links=[link]) as span:
                span.set_attribute("sample.id", i)
                span.set_attribute(attr_key, text)
                span.set_attribute("url.query", f"{key or 'next'}={quote(text)}&page=2")
                span.add_event(text if key is None else "event", {"sample.id": i, attr_key: text})
                if key is None:
                    span.set_status(Status(StatusCode.ERROR, text))
            counter.add(1, {"sample.id": i, attr_key: text})
            nested = {"request": {"form": [{"fields": {attr_key: text}}]}}
            if key is not None:
                nested = {"request": {key: {"value": [text, {"again": text}]}}}
            otel_logger.emit(
                body=text if key is None else {key: text},
                attributes={"sample.id": i, "path": "body"},
                event_name=text if key is None else None,
            )
            otel_logger.emit(body=nested, attributes={"sample.id": i, "path": "nested body"})
            std_logger.warning(
                "sample %d", i, extra={"sample.id": i, "path": "extra", attr_key: text, "context": nested}
            )
        meter_provider.force_flush()
    finally:
        std_logger.removeHandler(handler)
        tracer_provider.shutdown()
        logger_provider.shutdown()
        meter_provider.shutdown()

    out: dict[str, dict[int, Any]] = {}

    def put(path: str, i: int, value: Any) -> None:
        out.setdefault(path, {})[i] = value

    for span in span_sink.get_finished_spans():
        if span.attributes is None or "sample.id" not in span.attributes:
            continue
        i = int(span.attributes["sample.id"])  # type: ignore[arg-type]
        key = samples[i].get("key") or "app.note"
        attributes = dict(span.attributes)
        put("span attribute", i, attributes.get(key))
        put("query string", i, attributes.get("url.query"))
        event = span.events[0]
        put("event attribute", i, (event.attributes or {}).get(key))
        put("link attribute", i, (span.links[0].attributes or {}).get(key))
        if samples[i].get("key") is None:
            put("span name", i, span.name)
            put("event name", i, event.name)
            put("status description", i, span.status.description)
        if i == 0:
            for j in range(len(samples)):
                resource_key = f"app.{j}.{samples[j].get('key', 'note')}"
                put("resource attribute", j, span.resource.attributes.get(resource_key))
    for record in log_sink.get_finished_logs():
        log = record.log_record
        attributes = dict(log.attributes or {})
        if "sample.id" not in attributes:
            continue
        i = int(attributes["sample.id"])
        key = samples[i].get("key") or "app.note"
        if attributes["path"] == "body":
            put("log body", i, log.body)
            if samples[i].get("key") is None:
                put("log event name", i, log.event_name)
        elif attributes["path"] == "nested body":
            put("nested log body", i, log.body)
        else:
            put("log attribute", i, attributes.get(key))
            put("nested log attribute", i, attributes.get("context"))
    for batch in metric_sink.batches:
        for resource_metrics in batch.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        attributes = dict(point.attributes or {})
                        if "sample.id" in attributes:
                            i = int(attributes["sample.id"])
                            put("metric attribute", i, attributes.get(samples[i].get("key") or "app.note"))
    return out


def _leaves(value: Any) -> Iterator[str]:
    """Every string in ``value`` (nested mappings and sequences too), as it is and percent-decoded."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            yield from _leaves(key)
            yield from _leaves(item)
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif value is not None:
        text = value if isinstance(value, str) else str(value)
        yield text
        yield unquote(text)


def _leaks(secret: str, value: Any) -> bool:
    needles = {secret, unquote(secret)}
    return any(needle in leaf for leaf in _leaves(value) for needle in needles)


def _expected_paths(sample: dict[str, Any]) -> set[str]:
    keyed = {
        "span attribute",
        "query string",
        "event attribute",
        "link attribute",
        "resource attribute",
        "log body",
        "nested log body",
        "log attribute",
        "nested log attribute",
        "metric attribute",
    }
    if sample.get("key") is None:
        keyed |= {"span name", "event name", "status description", "log event name"}
    return keyed


@pytest.fixture(scope="module")
def secrets_out() -> dict[str, dict[int, Any]]:
    return _plant(SECRETS)


@pytest.fixture(scope="module")
def lookalikes_out() -> dict[str, dict[int, Any]]:
    return _plant(LOOKALIKES)


def _pairs(
    samples: list[dict[str, Any]], out: dict[str, dict[int, Any]], judge: Callable[[dict[str, Any], str, Any], bool]
) -> tuple[int, list[str]]:
    total, bad = 0, []
    for i, sample in enumerate(samples):
        for path in sorted(_expected_paths(sample)):
            total += 1
            if i not in out.get(path, {}):
                bad.append(f"{path}: sample {i} ({sample['kind']}) never came out")
            elif not judge(sample, path, out[path][i]):
                bad.append(f"{path}: {sample['kind']}: {sample['text'][:60]!r} -> {str(out[path][i])[:80]!r}")
    return total, bad


def test_corpus_is_large_and_labelled():
    """At least 150 secrets and 100 look-alikes, each with its kind."""
    assert len(SECRETS) >= 150 and len(LOOKALIKES) >= 100
    assert all(s["kind"] and s["secret"] in s["text"] for s in SECRETS)
    assert all(s["kind"] and s["text"] for s in LOOKALIKES)


def test_secret_recall_over_every_path(secrets_out):
    """At least 99% of secret/path pairs come out scrubbed."""
    total, leaked = _pairs(SECRETS, secrets_out, lambda s, path, value: not _leaks(s["secret"], value))
    recall = 1 - len(leaked) / total
    kinds = sorted({line.split(": ")[1] for line in leaked})
    print(
        f"\nredaction recall: {total - len(leaked)}/{total} secret/path pairs scrubbed = {recall:.1%}"
        f" ({len(SECRETS)} secrets, {len({k for s in SECRETS for k in [s['kind']]})} kinds);"
        f" leaking kinds: {kinds}"
    )
    for line in leaked[:40]:
        print("  leaked", line)
    assert recall >= RECALL_TARGET


def test_lookalike_precision_over_every_path(lookalikes_out):
    """At least 99% of look-alike/path pairs come out unchanged."""

    def untouched(sample: dict[str, Any], path: str, value: Any) -> bool:
        if path == "query string":
            return value == f"next={quote(sample['text'])}&page=2"
        return sample["text"] in _leaves(value)

    total, damaged = _pairs(LOOKALIKES, lookalikes_out, untouched)
    precision = 1 - len(damaged) / total
    print(
        f"\nredaction precision: {total - len(damaged)}/{total} look-alike/path pairs untouched = {precision:.1%}"
        f" ({len(LOOKALIKES)} look-alikes)"
    )
    for line in damaged[:40]:
        print("  damaged", line)
    assert precision >= PRECISION_TARGET
