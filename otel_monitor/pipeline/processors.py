"""The processor chain: operation metrics in ``on_end``, enrichment and redaction at export.

Contract of every piece here: called synchronously by the SDK, never blocks,
never raises (each body runs behind :func:`otel_monitor.guard.guarded`).

* :class:`OperationSpanProcessor` (``on_end``) names each span's operation,
  decides once whether it failed and in which category, and records
  ``monitor.operation.duration``.  It sees unsampled spans too (the sampler
  returns RECORD_ONLY), so counts are exact under head sampling.
* Spans are frozen by ``on_end``; :class:`EnrichingSpanExporter` wraps the
  export exporter and hands it copies carrying ``monitor.operation``,
  ``monitor.error.category``, ``error.type``, ``monitor.error.fingerprint``
  and ``enduser.pseudo.id`` (instead of a raw ``enduser.id``), with secrets
  scrubbed.  A span that needs nothing is passed through uncopied.
* :class:`EnrichingLogExporter` does the same for log records.

The configurator calls :func:`build_pipeline` and uses the
:class:`Pipeline` it returns.
"""

from __future__ import annotations

import copy
import dataclasses
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from opentelemetry.sdk._logs import LogRecordProcessor
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.trace import Event, ReadableSpan, SpanProcessor
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.trace import Link, SpanKind, Status, StatusCode

from otel_monitor import runtime, semconv
from otel_monitor.config.file import ConfigFile
from otel_monitor.guard import guarded, internal_error
from otel_monitor.pipeline import instruments as metrics
from otel_monitor.pipeline import tracebacks
from otel_monitor.semantics import errors, journeys
from otel_monitor.semantics.journeys import ENDUSER_ID, JourneyRecorder, pseudonymize
from otel_monitor.semantics.operations import (
    OperationRules,
    excluded_url_matcher,
    load_operation_rules,
    plain_attributes,
)
from otel_monitor.semantics.redaction import REDACTED, Redactor, load_redactor

_MAX_PENDING = 20_000  # results waiting for export; unexported ones are evicted oldest first


def _evict_oldest(table: dict[Any, Any]) -> None:
    """Drop the oldest entry; another thread changing the dict meanwhile just skips this round."""
    try:
        table.pop(next(iter(table)), None)
    except (RuntimeError, StopIteration):
        pass


class CapturedError(NamedTuple):
    """An exception logged while a span was current, classified from the live object."""

    category: str
    error_type: str
    fingerprint: str


class ExceptionCaptureProcessor(LogRecordProcessor):
    """Keeps the live exception of error log records for the span they were emitted in.

    FastAPI's native telemetry puts only ``error.type`` on a failed server
    span and logs the exception itself; classifying the live object here
    (error path only) gives the span its full-hierarchy category and its
    stack-based fingerprint.
    """

    def __init__(self, classifier: errors.ErrorClassifier) -> None:
        self.classifier = classifier
        self.by_span: dict[int, CapturedError] = {}

    def on_emit(self, log_record: Any) -> None:
        with guarded("exception capture"):
            record = log_record.log_record
            exc = record.exception
            if not isinstance(exc, BaseException) or not record.span_id:
                return
            self.by_span[record.span_id] = CapturedError(
                self.classifier.classify(exc), errors.qualified_name(type(exc)), errors.error_fingerprint(exc)
            )
            if len(self.by_span) > _MAX_PENDING:
                _evict_oldest(self.by_span)

    def shutdown(self) -> None:
        self.by_span.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class SpanResult(NamedTuple):
    """What ``on_end`` decided about a span, reused at export."""

    operation: str | None
    failed: bool
    category: str | None
    error_type: str | None
    fingerprint: str | None
    outcome: str | None = None


def _client_error_only(span: Any, attributes: Any) -> bool:
    """A server span failed by its 4xx answer alone (``OTEL_MONITOR_CLIENT_ERRORS_FAIL``): its outcome still says
    which client error it was (client_error, unauthenticated...), and ``error.type`` makes it a failure."""
    status = attributes.get(semconv.HTTP_RESPONSE_STATUS_CODE)
    return (
        span.kind is SpanKind.SERVER
        and isinstance(status, int)
        and 400 <= status < 500
        and span.status.status_code is not StatusCode.ERROR
    )


def _exception_event(span: Any) -> Any:
    for event in reversed(span.events or ()):
        if event.name == "exception":
            return event
    return None


def failure_of(
    span: Any,
    classifier: errors.ErrorClassifier,
    captured: CapturedError | None = None,
    attributes: Any = None,
    client_errors_fail: bool = False,
) -> tuple[bool, str | None, str | None]:
    """``(failed, category, error.type)``; a 4xx server span is categorised but not failed,
    unless ``client_errors_fail`` (``OTEL_MONITOR_CLIENT_ERRORS_FAIL``) says a 4xx fails."""
    if attributes is None:
        attributes = plain_attributes(span)
    status = attributes.get(semconv.HTTP_RESPONSE_STATUS_CODE)
    failed = span.status.status_code is StatusCode.ERROR or (
        span.kind is SpanKind.SERVER and isinstance(status, int) and status >= 500
    )
    client_error = span.kind is SpanKind.SERVER and isinstance(status, int) and 400 <= status < 500
    if client_error and client_errors_fail:
        failed = True
    if not failed and not client_error:
        return False, None, None
    category = attributes.get(semconv.MONITOR_ERROR_CATEGORY)
    error_type = attributes.get(semconv.ERROR_TYPE)
    if failed and captured is not None:
        category = category or captured.category
        error_type = error_type or captured.error_type
    event = _exception_event(span) if failed else None
    if event is not None:
        ev = event.attributes or {}
        exc_type = str(ev.get(semconv.EXCEPTION_TYPE, ""))
        error_type = error_type or exc_type or None
        if category is None and exc_type:
            category = classifier.classify_text(
                exc_type, ev.get(semconv.EXCEPTION_STACKTRACE), str(ev.get(semconv.EXCEPTION_MESSAGE, ""))
            )
    if category is None and isinstance(error_type, str) and error_type and not error_type.isdigit():
        category = classifier.classify_text(error_type)
    if category in (None, "unknown") and isinstance(status, int) and status >= 400:
        category = classifier.classify(status_code=status)
    if error_type is None:
        error_type = str(status) if isinstance(status, int) and status >= 400 else "_OTHER"
    return failed, str(category or "unknown"), str(error_type)


class OperationSpanProcessor(SpanProcessor):
    """Records ``monitor.operation.duration`` for every span that is an operation."""

    def __init__(
        self,
        rules: OperationRules,
        instruments: metrics.Instruments,
        classifier: errors.ErrorClassifier,
        recorder: JourneyRecorder | None = None,
        excluded_urls: Sequence[str] = (),
        capture: ExceptionCaptureProcessor | None = None,
        client_errors_fail: bool = False,
    ) -> None:
        self.rules = rules
        self.client_errors_fail = client_errors_fail
        self.captured = capture.by_span if capture is not None else {}
        self.histogram = instruments.operation_duration
        self.classifier = classifier
        self.recorder = recorder
        self.pending: dict[int, SpanResult | str] = {}
        # The matcher tracing uses too, so both sides agree on what is excluded.
        self._excluded = excluded_url_matcher(tuple(excluded_urls)) if excluded_urls else None
        self._labels: dict[tuple[Any, ...], dict[str, str]] = {}
        self._excluded_routes: dict[str, bool] = {}
        self._csrf_parents: dict[int, bool] = {}  # span ids whose child failed on a CSRF check

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass  # nothing to do before the end: keep the request path free

    def _is_excluded(self, attributes: Any) -> bool:
        # Route templates repeat: cache their verdict.  Raw paths only when there is no route.
        route = attributes.get(semconv.HTTP_ROUTE)
        if isinstance(route, str):
            verdict = self._excluded_routes.get(route)
            if verdict is None:
                verdict = self._excluded(route)  # type: ignore[misc]
                if len(self._excluded_routes) < 10_000:
                    self._excluded_routes[route] = verdict
            return verdict
        path = attributes.get(semconv.URL_PATH)
        return isinstance(path, str) and self._excluded(path)  # type: ignore[misc]

    def on_end(self, span: ReadableSpan) -> None:
        # try/except rather than guarded(): same containment, less per-span overhead.
        try:
            self._record(span)
        except Exception as exc:  # noqa: BLE001
            internal_error("operation span processor", exc)

    def _record(self, span: ReadableSpan) -> None:
        attributes = plain_attributes(span)
        operation = self.rules.name_for(span, attributes)
        if span.kind is SpanKind.CLIENT and span.parent is not None:
            status = attributes.get(semconv.HTTP_RESPONSE_STATUS_CODE)
            if isinstance(status, int) and status >= 400:
                # An exception the caller raises on this answer is classified by it.
                self.classifier.note_failed_call(span.parent.span_id, status)
        child_error = attributes.get(semconv.ERROR_TYPE)
        if child_error is not None and span.parent is not None and errors.names_csrf(child_error):
            # FastAPI's endpoint span carries the handled exception; its server span only the 403.
            rejected = self._csrf_parents
            rejected[span.parent.span_id] = True
            if len(rejected) > _MAX_PENDING:
                _evict_oldest(rejected)
        if operation is None:
            return
        if span.kind is SpanKind.SERVER and self._excluded is not None and self._is_excluded(attributes):
            return
        captured = self.captured.pop(span.context.span_id, None) if self.captured else None
        failed, category, error_type = failure_of(span, self.classifier, captured, attributes, self.client_errors_fail)
        # A success has no category: the common case costs no status lookup.
        outcome = (
            "success"
            if category is None
            else errors.call_outcome(
                failed and not _client_error_only(span, attributes),
                attributes.get(semconv.HTTP_RESPONSE_STATUS_CODE),
                "csrf" if self._csrf_parents and self._csrf_parents.pop(span.context.span_id, False) else error_type,
                span.status.description,
                attributes.get(semconv.MONITOR_OPERATION_OUTCOME),
            )
        )
        key = (operation, category, error_type) if failed else (operation, outcome)
        labels = self._labels.get(key)
        if labels is None:
            labels = {semconv.MONITOR_OPERATION: operation, semconv.MONITOR_OPERATION_OUTCOME: outcome}
            if failed:
                labels[semconv.MONITOR_ERROR_CATEGORY] = category or "unknown"
                labels[semconv.ERROR_TYPE] = error_type or "_OTHER"
                labels[semconv.MONITOR_ERROR_SEVERITY] = self.classifier.severity(category)
            if len(self._labels) < 10_000:
                self._labels[key] = labels
        # An ended span has both times; a check here would cost every request.
        self.histogram.record((span.end_time - span.start_time) / 1e9, labels, key=key)  # type: ignore[operator]
        if span.context.trace_flags.sampled:
            pending = self.pending
            # A success needs only its name; a bare string keeps the hot path allocation-free.
            pending[span.context.span_id] = (
                operation
                if category is None
                else SpanResult(
                    operation, failed, category, error_type, captured.fingerprint if captured else None, outcome
                )
            )
            if len(pending) > _MAX_PENDING:
                _evict_oldest(pending)
        if not failed and self.recorder is not None and self.recorder.funnels.on_operation.get(operation):
            self.recorder.on_operation_success(operation, attributes)

    def shutdown(self) -> None:
        # Keep ``pending``: shutdown reaches us before the export processor's
        # final flush, which still enriches the spans it holds from it (their
        # stack-based fingerprint above all). It is bounded by _MAX_PENDING.
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class _DelegatingExporter:
    """Shutdown and flush go to the wrapped exporter."""

    exporter: Any

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return bool(self.exporter.force_flush(timeout_millis))


def _cut(value: str, limit: int) -> str:
    cut = value[:limit]
    if REDACTED in value and REDACTED not in cut and limit > len(REDACTED):
        # Keep the sign that something was scrubbed.
        cut = value[: limit - len(REDACTED)] + REDACTED
    return cut


def _within_limit(attributes: Any, limit: int | None) -> Any:
    """``attributes`` with strings cut to ``limit`` characters (the same mapping when none is longer)."""
    if not limit or not any(isinstance(v, str) and len(v) > limit for v in attributes.values()):
        return attributes
    return {k: _cut(v, limit) if isinstance(v, str) and len(v) > limit else v for k, v in attributes.items()}


def _value_length_limit(span: Any) -> int | None:
    """The span's limit on string attribute values: its bounded mapping's, or its span limits' when it holds a dict."""
    attributes = getattr(span, "_attributes", None)  # private: ReadableSpan._attributes, read only
    limit = getattr(attributes, "max_value_len", None)
    if limit is None and attributes.__class__ is dict:  # otel_monitor.fast.spans keeps a dict the limits left as it was
        # private: Span._limits, read only (absent: no limit)
        limit = getattr(getattr(span, "_limits", None), "max_span_attribute_length", None)
    return limit


def copy_span(
    span: ReadableSpan,
    name: str,
    attributes: Any,
    resource: Any,
    events: Sequence[Event] | None = None,
    links: Sequence[Link] | None = None,
    status: Status | None = None,
) -> ReadableSpan:
    """``span`` with these fields changed (None: kept), through the SDK's public constructor.

    The counts of events and links the SDK dropped are not carried over (they
    are private to the span); the launcher passes a copy that keeps them.
    """
    return ReadableSpan(
        name=name,
        context=span.context,
        parent=span.parent,
        resource=resource,
        attributes=attributes,
        events=span.events if events is None else tuple(events),
        links=span.links if links is None else tuple(links),
        kind=span.kind,
        status=span.status if status is None else status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class SpanEnricher:
    """Builds the exported form of a span: our attributes added, secrets scrubbed.

    ``copy``: how a span with changed fields is made (:func:`copy_span`'s
    signature); the launcher passes ``otel_monitor.fast.span_copy.light_copy``.
    """

    def __init__(
        self,
        processor: OperationSpanProcessor,
        redactor: Redactor,
        user_id_key: str | None,
        copy: Callable[..., ReadableSpan] = copy_span,
    ) -> None:
        self.processor = processor
        self.redactor = redactor
        self.user_id_key = user_id_key
        self.copy = copy

    def enrich(self, span: ReadableSpan) -> ReadableSpan:
        processor = self.processor
        result = processor.pending.pop(span.context.span_id, None)
        attributes = plain_attributes(span)
        extra: dict[str, Any] = {}
        fingerprint = None
        outcome = None
        if result is None:
            operation = processor.rules.name_for(span, attributes)
            failed, category, error_type = failure_of(
                span, processor.classifier, None, attributes, processor.client_errors_fail
            )
        elif isinstance(result, str):
            operation, failed, category, error_type = result, False, None, None
        else:
            operation, failed, category, error_type, fingerprint, outcome = result
        if operation is not None and semconv.MONITOR_OPERATION not in attributes:
            extra[semconv.MONITOR_OPERATION] = operation
        if category is not None:
            if semconv.MONITOR_ERROR_CATEGORY not in attributes:
                extra[semconv.MONITOR_ERROR_CATEGORY] = category
            if semconv.MONITOR_ERROR_SEVERITY not in attributes:
                extra[semconv.MONITOR_ERROR_SEVERITY] = processor.classifier.severity(category, client_error=not failed)
            if semconv.MONITOR_OPERATION_OUTCOME not in attributes and operation is not None:
                extra[semconv.MONITOR_OPERATION_OUTCOME] = outcome or errors.call_outcome(
                    failed and not _client_error_only(span, attributes),
                    attributes.get(semconv.HTTP_RESPONSE_STATUS_CODE),
                    error_type,
                    span.status.description,
                )
        if failed:
            if semconv.ERROR_TYPE not in attributes and error_type:
                extra[semconv.ERROR_TYPE] = error_type
        if category is not None:
            # A 4xx gets its group too (by status and message): repeated 403s are one group to look up.
            if semconv.MONITOR_ERROR_FINGERPRINT not in attributes:
                extra[semconv.MONITOR_ERROR_FINGERPRINT] = fingerprint or self._fingerprint(span, error_type)
        if ENDUSER_ID in attributes:
            raw = attributes[ENDUSER_ID]
            extra[ENDUSER_ID] = None  # removed below: the raw id never leaves
            if self.user_id_key and semconv.ENDUSER_PSEUDO_ID not in attributes:
                extra[semconv.ENDUSER_PSEUDO_ID] = pseudonymize(str(raw), self.user_id_key)
        merged: Any = {**attributes, **extra} if extra else attributes
        if extra.get(ENDUSER_ID, 0) is None:
            del merged[ENDUSER_ID]
        redact = self.redactor
        scrubbed = redact.attributes(merged)
        if scrubbed is not attributes:
            # What we composed or scrubbed obeys the span's value length limit too.
            scrubbed = _within_limit(scrubbed, _value_length_limit(span))
        # private: ReadableSpan._events/_links, read only: skips the tuple copies of empty ones (absent: the copies)
        events = span.events if getattr(span, "_events", True) else ()
        new_events = None
        for i, event in enumerate(events or ()):
            event_attributes = redact.attributes(event.attributes)
            event_name = redact.text(event.name)
            if event_attributes is not event.attributes or event_name is not event.name:
                new_events = new_events or list(events)
                new_events[i] = Event(event_name, event_attributes, event.timestamp)
        links = span.links if getattr(span, "_links", True) else ()
        new_links = None
        for i, link in enumerate(links or ()):
            link_attributes = redact.attributes(link.attributes)
            if link_attributes is not link.attributes:
                new_links = new_links or list(links)
                new_links[i] = Link(link.context, link_attributes)
        resource = redact.resource(span.resource)
        description = span.status.description
        new_description = redact.text(description) if description else description
        # A call failed by its 4xx answer alone (OTEL_MONITOR_CLIENT_ERRORS_FAIL) is exported as an error.
        errored = failed and processor.client_errors_fail and _client_error_only(span, attributes)
        name = redact.text(span.name)
        if (
            scrubbed is attributes
            and new_events is None
            and new_description is description
            and name is span.name
            and new_links is None
            and resource is span.resource
            and not errored
        ):
            return span
        status = None
        if errored:
            status = Status(StatusCode.ERROR, new_description)
        elif new_description is not description:
            status = Status(span.status.status_code, new_description)
        return self.copy(span, name, scrubbed, resource, new_events, new_links, status)

    def _fingerprint(self, span: ReadableSpan, error_type: str | None) -> str:
        event = _exception_event(span)
        if event is not None:
            ev = event.attributes or {}
            return errors.fingerprint_from_text(
                str(ev.get(semconv.EXCEPTION_TYPE, error_type or "")),
                ev.get(semconv.EXCEPTION_STACKTRACE),
                str(ev.get(semconv.EXCEPTION_MESSAGE, "")),
            )
        return errors.fingerprint_from_text(error_type or "_OTHER", None, span.status.description or "")


class EnrichingSpanExporter(_DelegatingExporter, SpanExporter):
    """Export-time wrapper: exports enriched, scrubbed copies; a span that fails enrichment is dropped."""

    def __init__(self, exporter: SpanExporter, enricher: SpanEnricher) -> None:
        self.exporter = exporter
        self.enricher = enricher

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        out: list[ReadableSpan] = []
        for span in spans:
            try:
                out.append(self.enricher.enrich(span))
            except Exception as exc:  # noqa: BLE001 - never export a span we could not scrub
                internal_error("span export enrichment", exc)
        return self.exporter.export(out) if out else SpanExportResult.SUCCESS


# What the logging instrumentation adds to stdlib records for log formatters.
_CORRELATION_COPIES = ("otelSpanID", "otelTraceID", "otelTraceSampled", "otelServiceName")


# Per redactor: stack trace text -> its scrubbed text (None when clean). An error site logs the same text
# again and again; scanning a few kilobytes for secrets is most of what exporting an error record costs.
_STACKTRACES: weakref.WeakKeyDictionary[Redactor, dict[str, str | None]] = weakref.WeakKeyDictionary()
_STACKTRACE_LIMIT = 256  # texts kept per redactor; never evicted, so the work per record stays bounded


def _scrubbed_with_stacktrace(redactor: Redactor, attributes: Any) -> Any:
    """``redactor.attributes(attributes)``, with a long ``exception.stacktrace`` scrubbed once per distinct text.

    The redactor scrubs each attribute on its own, so scrubbing the stack trace apart gives the same result.
    """
    stacktrace = attributes.get(semconv.EXCEPTION_STACKTRACE)
    if stacktrace.__class__ is not str or len(stacktrace) <= 200 or not redactor.enabled:
        return redactor.attributes(attributes)
    known = _STACKTRACES.get(redactor)
    if known is None:
        known = _STACKTRACES.setdefault(redactor, {})
    if stacktrace in known:
        scrubbed_text = known[stacktrace]
    else:
        new = redactor.value(semconv.EXCEPTION_STACKTRACE, stacktrace)
        scrubbed_text = None if new is stacktrace else new
        if len(known) < _STACKTRACE_LIMIT:
            known[stacktrace] = scrubbed_text
    rest = {key: value for key, value in attributes.items() if key != semconv.EXCEPTION_STACKTRACE}
    scrubbed_rest = redactor.attributes(rest)
    if scrubbed_rest is rest and scrubbed_text is None:
        return attributes
    return {**attributes, **(scrubbed_rest or {}), semconv.EXCEPTION_STACKTRACE: scrubbed_text or stacktrace}


class EnrichingLogExporter(_DelegatingExporter, LogRecordExporter):
    """Export-time wrapper for logs: error records classified and fingerprinted, secrets scrubbed."""

    def __init__(
        self,
        exporter: LogRecordExporter,
        redactor: Redactor,
        classifier: errors.ErrorClassifier,
        user_id_key: str | None,
    ) -> None:
        self.exporter = exporter
        self.redactor = redactor
        self.classifier = classifier
        self.user_id_key = user_id_key

    def _enrich(self, record: Any) -> Any:
        log = record.log_record
        attributes = log.attributes or {}
        extra: dict[str, Any] = {}
        exc = getattr(log, "exception", None)
        exc_type = attributes.get(semconv.EXCEPTION_TYPE)
        if (exc is not None or exc_type) and semconv.MONITOR_ERROR_CATEGORY not in attributes:
            if isinstance(exc, BaseException):
                extra[semconv.MONITOR_ERROR_CATEGORY] = self.classifier.classify(exc)
                extra[semconv.MONITOR_ERROR_FINGERPRINT] = errors.error_fingerprint(exc)
                extra.setdefault(semconv.ERROR_TYPE, errors.qualified_name(type(exc)))
            else:
                trace_text = attributes.get(semconv.EXCEPTION_STACKTRACE)
                message = str(attributes.get(semconv.EXCEPTION_MESSAGE, ""))
                extra[semconv.MONITOR_ERROR_CATEGORY] = self.classifier.classify_text(
                    str(exc_type), trace_text, message
                )
                extra[semconv.MONITOR_ERROR_FINGERPRINT] = errors.fingerprint_from_text(
                    str(exc_type), trace_text, message
                )
                extra.setdefault(semconv.ERROR_TYPE, str(exc_type))
        if (exc is not None or exc_type) and semconv.MONITOR_ERROR_SEVERITY not in attributes:
            category = extra.get(semconv.MONITOR_ERROR_CATEGORY, attributes.get(semconv.MONITOR_ERROR_CATEGORY))
            extra[semconv.MONITOR_ERROR_SEVERITY] = self.classifier.severity(str(category or "unknown"))
        if isinstance(exc, BaseException) and exc_type and semconv.EXCEPTION_STACKTRACE not in attributes:
            # Left to export time at emit (otel_monitor.fast.tracebacks.defer_log_stacktraces): formatted
            # here, once per error site, only for a record that is exported.
            limit = getattr(getattr(record, "limits", None), "max_attribute_length", None)
            stacktrace = tracebacks.format_exception(exc, tracebacks.emitted_traceback(exc))
            extra[semconv.EXCEPTION_STACKTRACE] = stacktrace[:limit] if limit else stacktrace
        merged: Any = {**attributes, **extra} if extra else attributes
        if _CORRELATION_COPIES[0] in merged:
            # The record carries its trace and span ids, and the resource the service name.
            merged = {key: value for key, value in merged.items() if key not in _CORRELATION_COPIES}
        if ENDUSER_ID in merged:
            merged = dict(merged)
            raw = merged.pop(ENDUSER_ID)
            if self.user_id_key:
                merged.setdefault(semconv.ENDUSER_PSEUDO_ID, pseudonymize(str(raw), self.user_id_key))
        scrubbed = _scrubbed_with_stacktrace(self.redactor, merged)
        body = self.redactor.body(log.body)
        event_name = log.event_name and self.redactor.text(log.event_name)
        resource = self.redactor.resource(record.resource)
        if scrubbed is attributes and body is log.body and event_name is log.event_name and resource is record.resource:
            return record
        new_log = copy.copy(log)
        new_log.attributes = scrubbed
        new_log.body = body
        new_log.event_name = event_name
        return dataclasses.replace(record, log_record=new_log, resource=resource)

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        out = []
        for record in batch:
            try:
                out.append(self._enrich(record))
            except Exception as exc:  # noqa: BLE001 - never export a record we could not scrub
                internal_error("log export enrichment", exc)
        return self.exporter.export(out) if out else LogRecordExportResult.SUCCESS


@dataclass
class Pipeline:
    """What the configurator wires in: processors before the export processor, and exporter wrappers."""

    span_processors: list[SpanProcessor] = field(default_factory=list)
    log_record_processors: list[LogRecordProcessor] = field(default_factory=list)
    enricher: SpanEnricher | None = None
    redactor: Redactor | None = None
    classifier: errors.ErrorClassifier | None = None
    user_id_key: str | None = None
    problems: list[str] = field(default_factory=list)  # bad config entries, each a "file:line: ..." line

    def wrap_span_exporter(self, exporter: SpanExporter) -> SpanExporter:
        assert self.enricher is not None
        return EnrichingSpanExporter(exporter, self.enricher)

    def wrap_log_exporter(self, exporter: LogRecordExporter) -> LogRecordExporter:
        assert self.redactor is not None and self.classifier is not None
        return EnrichingLogExporter(exporter, self.redactor, self.classifier, self.user_id_key)


def active_or_default() -> Pipeline:
    """The pipeline build_pipeline put in the runtime, or a default one: built-in redaction and classification only."""
    state = runtime.current()
    pipeline = state.pipeline
    if pipeline is not None:
        return pipeline
    default = state.default_pipeline
    if default is None:
        classifier, redactor = errors.ErrorClassifier(), Redactor()
        processor = OperationSpanProcessor(OperationRules(), metrics.instruments_in_use(), classifier)
        default = Pipeline([], [], SpanEnricher(processor, redactor, None), redactor, classifier, None)
        state.default_pipeline = default
    return default


class LateBoundSpanExporter(_DelegatingExporter, SpanExporter):
    """Enriches through the pipeline :func:`build_pipeline` bound last, looked up at each export.

    For a configurator that must create its export processors before the
    pipeline exists (the SDK builds the tracer provider before the meter and
    logger providers our pipeline needs).  Until a pipeline is bound (or if
    building it failed) a default one still scrubs: nothing leaves unredacted.
    """

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return EnrichingSpanExporter(self.exporter, active_or_default().enricher).export(spans)  # type: ignore[arg-type]


class LateBoundLogExporter(_DelegatingExporter, LogRecordExporter):
    """The log counterpart of :class:`LateBoundSpanExporter`."""

    def __init__(self, exporter: LogRecordExporter) -> None:
        self.exporter = exporter

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        return active_or_default().wrap_log_exporter(self.exporter).export(batch)


def build_pipeline(
    settings: Any,
    config: ConfigFile,
    meter_provider: Any,
    logger_provider: Any,
    copy: Callable[..., ReadableSpan] = copy_span,
    direct_histograms: Callable[[Any, int], Any] | None = None,
) -> Pipeline:
    """Build our processors and wrappers from resolved settings and the config file.

    Also puts the instruments, classifier and journey recorder in the runtime:
    the public helpers (``cache_lookup``, ``classify_error``, ``journey_milestone``...) use.
    """
    from otel_monitor.semantics.slo import load_slos_or_defaults

    strict = bool(getattr(settings, "strict", False))
    problems: list[str] = []  # each bad config entry, also logged (or raised in strict mode)
    buckets = load_slos_or_defaults(config, strict=strict, problems=problems).buckets
    instruments = metrics.create_instruments(meter_provider, buckets, settings.cardinality_limit, direct_histograms)
    state = runtime.current()
    state.instruments = instruments
    classifier = errors.ErrorClassifier(errors.load_error_rules(config, strict=strict, problems=problems))
    state.classifier = classifier
    redactor = load_redactor(
        settings.redact,
        settings.redact_patterns or (),
        settings.safe_keys or (),
        config,
        strict=strict,
        problems=problems,
    )
    store = None
    if settings.journey_store:
        try:
            store = journeys.JourneyStore(settings.journey_store)
        except Exception as exc:  # noqa: BLE001 - a bad store URL must not stop the app
            from otel_monitor.config.settings import report_problem

            report_problem(
                f"OTEL_MONITOR_JOURNEY_STORE: cannot open the journey store: {exc}", strict=strict, problems=problems
            )
    logger = logger_provider.get_logger("otel_monitor") if logger_provider is not None else None
    if logger is None:
        from opentelemetry._logs import get_logger

        logger = get_logger("otel_monitor")
    recorder = JourneyRecorder(
        logger,
        instruments.journey_milestones,
        settings.user_id_key,
        store,
        journeys.load_funnels(config, strict=strict, problems=problems),
    )
    state.journey_recorder = recorder
    rules = load_operation_rules(config, strict=strict, problems=problems)
    state.operation_namer = rules.name_for
    capture = ExceptionCaptureProcessor(classifier)
    processor = OperationSpanProcessor(
        rules,
        instruments,
        classifier,
        recorder,
        settings.excluded_urls or (),
        capture,
        bool(getattr(settings, "client_errors_fail", False)),
    )
    enricher = SpanEnricher(processor, redactor, settings.user_id_key, copy)
    state.pipeline = Pipeline([processor], [capture], enricher, redactor, classifier, settings.user_id_key, problems)
    return state.pipeline
