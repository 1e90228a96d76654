"""OTLP/HTTP exporters for spans, metrics and logs that do not load the protobuf runtime.

They are the SDK's OTLP/HTTP exporters (``opentelemetry-exporter-otlp-proto-http``)
with :mod:`otel_monitor.otlp.encode` in place of the SDK's protobuf encoders:
the same constructor arguments, the same environment variables (endpoint,
headers, timeout, compression, certificates, credential providers,
temporality and histogram preferences), the SDK's own HTTP client with its
retries and backoff, its transports, its request-size limit and its
exporter self-metrics, all imported from that package. What they do not
import is the SDK's encoder modules, which load ``google.protobuf`` and the
generated OTLP messages: about 15 ms of every process start, and the
per-item message objects on every export.

The configurator uses them where the SDK would build its own OTLP/HTTP
exporters (``OTEL_MONITOR_LEAN_OTLP``, on by default).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from opentelemetry.exporter.otlp.common import http as _http
from opentelemetry.exporter.otlp.common._aggregation import _get_aggregation, _get_temporality
from opentelemetry.exporter.otlp.common._exporter_metrics import create_exporter_metrics
from opentelemetry.exporter.otlp.proto.http._common import (
    _DEFAULT_MAX_REQUEST_SIZE,
    RequestPayloadTooLargeError,
    _build_transport,
    _is_request_too_large,
    _load_session_from_envvar,
    _normalize_compression,
    _resolve_compression,
    _resolve_endpoint,
    _resolve_headers,
    _resolve_timeout,
)
from opentelemetry.sdk._logs.export import LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.semconv._incubating.attributes.otel_attributes import OtelComponentTypeValues

from otel_monitor.otlp import encode as otlp_encode

_HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"


class _Sender:
    """What the three exporters share: configuration from arguments and environment, and one export."""

    _signal = ""  # TRACES, METRICS, LOGS: the environment variables' infix
    _path = ""
    _kind: Literal["traces", "metrics", "logs"] = "traces"  # the self-metrics' signal
    _items = ""  # the HTTP client's word for them in its messages
    _component: Any = None
    _logger_name = ""  # the logger of the SDK's exporter for this signal

    def __init__(
        self,
        endpoint: str | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        compression: Any = None,
        session: Any = None,
        *,
        max_request_size: int | None = None,
        meter_provider: Any = None,
        _transport: Any = None,
    ) -> None:
        self._configure(
            endpoint,
            certificate_file,
            client_key_file,
            client_certificate_file,
            headers,
            timeout,
            compression,
            session,
            max_request_size,
            meter_provider,
            _transport,
        )

    def _configure(
        self,
        endpoint: str | None,
        certificate_file: str | None,
        client_key_file: str | None,
        client_certificate_file: str | None,
        headers: Mapping[str, str] | None,
        timeout: float | None,
        compression: Any,
        session: Any,
        max_request_size: int | None,
        meter_provider: Any,
        transport: Any,
    ) -> None:
        signal = self._signal
        # The SDK exporter's own logger: silencing opentelemetry.exporter.otlp silences these too.
        self._logger = logging.getLogger(self._logger_name)
        self._endpoint = endpoint or _resolve_endpoint(f"OTEL_EXPORTER_OTLP_{signal}_ENDPOINT", self._path)  # type: ignore[arg-type]
        self._compression = _normalize_compression(compression) or _resolve_compression(
            f"OTEL_EXPORTER_OTLP_{signal}_COMPRESSION"
        )
        if transport is None:
            transport = _build_transport(
                certificate_file,
                client_key_file,
                client_certificate_file,
                f"OTEL_EXPORTER_OTLP_{signal}_CERTIFICATE",
                f"OTEL_EXPORTER_OTLP_{signal}_CLIENT_KEY",
                f"OTEL_EXPORTER_OTLP_{signal}_CLIENT_CERTIFICATE",
                session=session
                or _load_session_from_envvar(f"OTEL_PYTHON_EXPORTER_OTLP_HTTP_{signal}_CREDENTIAL_PROVIDER"),  # type: ignore[arg-type]
            )
        self._client = _http._OTLPHTTPClient(  # noqa: SLF001 - the SDK OTLP exporter's HTTP client (compat: lean_otlp)
            transport=transport,
            endpoint=self._endpoint,
            kind=self._items,  # type: ignore[arg-type]
            timeout=timeout if timeout is not None else _resolve_timeout(f"OTEL_EXPORTER_OTLP_{signal}_TIMEOUT"),
            compression=self._compression,
            headers=_resolve_headers(headers, f"OTEL_EXPORTER_OTLP_{signal}_HEADERS"),
            logger=self._logger,
        )
        if self._compression is _http.Compression.GZIP:
            self._client._compress = otlp_encode.gzip_fast  # type: ignore[assignment]  # noqa: SLF001 - the SDK OTLP exporter's HTTP client (compat: lean_otlp)
        self._max_request_size = _DEFAULT_MAX_REQUEST_SIZE if max_request_size is None else max_request_size
        self._shutdown = False
        self.set_meter_provider(meter_provider)

    def set_meter_provider(self, meter_provider: Any) -> None:
        """The exporter's own metrics (``OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED``), as the SDK's exporters."""
        enabled = os.environ.get("OTEL_PYTHON_SDK_INTERNAL_METRICS_ENABLED", "").strip().lower() == "true"
        self._metrics = create_exporter_metrics(self._component, self._kind, self._endpoint, meter_provider, enabled)

    def _send(self, count: int, encode: Callable[[], bytes]) -> bool:
        with self._metrics.export_operation(count) as result:
            try:
                data = encode()
            except Exception as error:  # noqa: BLE001 - reported as the SDK's exporters report it
                self._logger.error("Failed to encode %s batch: %s", self._items, error)
                result.error = error
                return False
            if _is_request_too_large(data, self._max_request_size):
                self._logger.warning(
                    "Dropping %s batch: serialized size %d bytes exceeds max_request_size %d bytes.",
                    self._items,
                    len(data),
                    self._max_request_size,
                )
                result.error = RequestPayloadTooLargeError(
                    f"Serialized {self._items} request size {len(data)} bytes exceeds max_request_size "
                    f"{self._max_request_size} bytes."
                )
                return False
            outcome = self._client.export(data)
            if not outcome.success:
                result.error = outcome.error
                result.error_attrs = (
                    {_HTTP_RESPONSE_STATUS_CODE: outcome.status_code} if outcome.status_code is not None else None
                )
                return False
        return True

    def _refuse_after_shutdown(self) -> bool:
        if self._shutdown:
            self._logger.warning("Exporter already shutdown, ignoring batch")
        return self._shutdown

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self._shutdown:
            self._logger.warning("Exporter already shutdown, ignoring call")
            return
        self._shutdown = True
        self._client.shutdown()

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Nothing is buffered in these exporters."""
        return True


class OTLPSpanExporter(_Sender, SpanExporter):
    """The SDK's ``OTLPSpanExporter`` (OTLP/HTTP), encoded by otel-monitor."""

    _signal, _path, _kind, _items = "TRACES", "v1/traces", "traces", "spans"
    _component = OtelComponentTypeValues.OTLP_HTTP_SPAN_EXPORTER
    _logger_name = "opentelemetry.exporter.otlp.proto.http.trace_exporter"

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        if self._refuse_after_shutdown():
            return SpanExportResult.FAILURE
        ok = self._send(len(spans), lambda: otlp_encode.encode_spans(spans))
        return SpanExportResult.SUCCESS if ok else SpanExportResult.FAILURE


class OTLPLogExporter(_Sender, LogRecordExporter):
    """The SDK's ``OTLPLogExporter`` (OTLP/HTTP), encoded by otel-monitor."""

    _signal, _path, _kind, _items = "LOGS", "v1/logs", "logs", "logs"
    _component = OtelComponentTypeValues.OTLP_HTTP_LOG_EXPORTER
    _logger_name = "opentelemetry.exporter.otlp.proto.http._log_exporter"

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        if self._refuse_after_shutdown():
            return LogRecordExportResult.FAILURE
        ok = self._send(len(batch), lambda: otlp_encode.encode_logs(batch))
        return LogRecordExportResult.SUCCESS if ok else LogRecordExportResult.FAILURE


class OTLPMetricExporter(_Sender, MetricExporter):
    """The SDK's ``OTLPMetricExporter`` (OTLP/HTTP), encoded by otel-monitor."""

    _signal, _path, _kind, _items = "METRICS", "v1/metrics", "metrics", "metrics"
    _component = OtelComponentTypeValues.OTLP_HTTP_METRIC_EXPORTER
    _logger_name = "opentelemetry.exporter.otlp.proto.http.metric_exporter"

    def __init__(
        self,
        endpoint: str | None = None,
        certificate_file: str | None = None,
        client_key_file: str | None = None,
        client_certificate_file: str | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        compression: Any = None,
        session: Any = None,
        preferred_temporality: Any = None,
        preferred_aggregation: Any = None,
        max_export_batch_size: int | None = None,
        *,
        max_request_size: int | None = None,
        meter_provider: Any = None,
        _transport: Any = None,
    ) -> None:
        MetricExporter.__init__(
            self,
            preferred_temporality=_get_temporality(preferred_temporality),
            preferred_aggregation=_get_aggregation(preferred_aggregation),
        )
        self._max_export_batch_size = max_export_batch_size
        self._configure(
            endpoint,
            certificate_file,
            client_key_file,
            client_certificate_file,
            headers,
            timeout,
            compression,
            session,
            max_request_size,
            meter_provider,
            _transport,
        )

    def export(self, metrics_data: Any, timeout_millis: float | None = 10_000, **kwargs: Any) -> MetricExportResult:
        if self._refuse_after_shutdown():
            return MetricExportResult.FAILURE
        try:
            batches = otlp_encode.metric_batches(metrics_data, self._max_export_batch_size)
        except Exception as error:  # noqa: BLE001 - as the SDK's exporter reports it
            self._logger.error("Failed to encode metrics batch: %s", error)
            return MetricExportResult.FAILURE
        for data, count in batches:
            if not self._send(count, lambda data=data: data):  # type: ignore[misc]
                return MetricExportResult.FAILURE
        return MetricExportResult.SUCCESS


EXPORTERS = {"traces": OTLPSpanExporter, "metrics": OTLPMetricExporter, "logs": OTLPLogExporter}
