"""A fast OTLP protobuf encoder for spans, metrics and logs, and cheaper compression.

The SDK's exporter builds one ``opentelemetry-proto`` message object per span,
attribute and value before serialising; that costs about 40 µs per span here,
paid on the export thread that shares the GIL with the app's requests, and
importing the protobuf runtime and the generated modules costs every process
about 15 ms at start. This module writes the same bytes directly (protobuf
wire format) and caches what repeats from span to span: attribute keys,
common small key/value pairs, the encoded resource and scope.
``tests/unit/test_otlp_encode.py`` checks that what it writes parses, with
``opentelemetry-proto``, to exactly the message the SDK's own encoders build.

Where the SDK's encoders would fail a whole batch, these keep it: an
attribute value OTLP cannot carry (an unknown type, an integer outside
int64) is left out with a warning (as the SDK does), a log body of such a
type is sent as its ``str()`` (the SDK would drop the batch), and a string that is not valid UTF-8 gets a
replacement character.

Compression: the SDK gzips at level 9; level 1 is five times cheaper for a
few per cent more bytes on OTLP payloads.
"""

from __future__ import annotations

import codecs
import logging
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind

# The SDK encoder's logger: what it reports is reported where the SDK reports it.
_log = logging.getLogger("opentelemetry.exporter.otlp.proto.common._internal")

_pack_double = struct.Struct("<d").pack
_pack_sfixed64 = struct.Struct("<q").pack
_pack_fixed64 = struct.Struct("<Q").pack
_pack_fixed32 = struct.Struct("<I").pack

_KIND = {SpanKind.INTERNAL: 1, SpanKind.SERVER: 2, SpanKind.CLIENT: 3, SpanKind.PRODUCER: 4, SpanKind.CONSUMER: 5}
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_FLAGS_HAS_IS_REMOTE = 0x100
_FLAGS_IS_REMOTE = 0x200

# Bounded caches: they only speed up what repeats; anything else is encoded afresh.
_CACHE_LIMIT = 4096
_key_cache: dict[str, bytes] = {}
_pair_cache: dict[tuple[int, str, type, Any], bytes] = {}
_block_cache: dict[int, tuple[Any, bytes]] = {}  # id(resource or scope) -> (object, encoded)


def _varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64
    if value < 0x80:
        return bytes((value,))
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _replace_with_u_fffd(error: UnicodeError) -> tuple[bytes, int]:
    if not isinstance(error, UnicodeEncodeError):
        raise error
    # Bytes: the UTF-8 codec takes only ASCII text back from an error handler.
    return "\ufffd".encode() * (error.end - error.start), error.end


# A lone surrogate cannot be UTF-8: it becomes U+FFFD, the replacement character,
# rather than losing the whole batch ("replace" would write "?").
codecs.register_error("otel_monitor.replacement_character", _replace_with_u_fffd)


def _string(number: int, text: str) -> bytes:
    return _field(number, text.encode("utf-8", "otel_monitor.replacement_character"))


def _any_value(value: Any) -> bytes:
    # Order of checks as the SDK's encoder: bool before int.
    if value is None:
        return b""
    if isinstance(value, bool):
        return b"\x10\x01" if value else b"\x10\x00"
    if isinstance(value, str):
        return _string(1, value)
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:  # as protobuf: int64 or nothing, never a wrong number
            raise ValueError(f"integer {value} out of the int64 range")
        return b"\x18" + _varint(value)
    if isinstance(value, float):
        return b"\x21" + _pack_double(value)
    if isinstance(value, bytes):
        return _field(7, value)
    if isinstance(value, Sequence):
        return _field(5, b"".join(_field(1, _any_value(v)) for v in value))
    if isinstance(value, Mapping):
        return _field(6, b"".join(_field(1, _key_value(str(k), v)) for k, v in value.items()))
    raise TypeError(f"invalid attribute value type {type(value).__name__}")


def _key_value(key: str, value: Any) -> bytes:
    """An encoded KeyValue message (without its own field header)."""
    encoded_key = _key_cache.get(key)
    if encoded_key is None:
        encoded_key = _string(1, key)
        if len(_key_cache) < _CACHE_LIMIT:
            _key_cache[key] = encoded_key
    return encoded_key + _field(2, _any_value(value))


def _attributes(number: int, attributes: Mapping[str, Any] | None) -> bytes:
    """Repeated KeyValue field ``number``; small scalar pairs come from a cache."""
    if not attributes:
        return b""
    parts = []
    cache = _pair_cache
    # The SDK's BoundedAttributes iterates through the Mapping ABC, slowly; its dict does not.
    if attributes.__class__ is not dict:
        # private: BoundedAttributes._dict, read only (absent: the mapping itself)
        attributes = getattr(attributes, "_dict", attributes)
    for key, value in attributes.items():
        kind = type(value)
        if (kind is str and len(value) <= 64) or kind is bool or kind is int:
            cache_key = (number, key, kind, value)
            encoded = cache.get(cache_key)
            if encoded is not None:
                parts.append(encoded)
                continue
        else:
            cache_key = None
        try:
            encoded = _field(number, _key_value(key, value))
        except (TypeError, ValueError) as exc:  # as the SDK's encoder: this attribute is left out, not the batch
            _log.exception("Failed to encode key %s: %s", key, exc)
            continue
        if cache_key is not None and len(cache) < _CACHE_LIMIT:
            cache[cache_key] = encoded
        parts.append(encoded)
    return b"".join(parts)


def _cached_block(obj: Any, build: Any) -> bytes:
    entry = _block_cache.get(id(obj))
    if entry is not None and entry[0] is obj:
        return entry[1]
    encoded = build(obj)
    if len(_block_cache) >= _CACHE_LIMIT:
        _block_cache.clear()
    _block_cache[id(obj)] = (obj, encoded)
    return encoded


def _resource(resource: Any) -> bytes:
    return _attributes(1, resource.attributes)


def _scope(scope: Any) -> bytes:
    if scope is None:
        return b""
    out = b""
    if scope.name:
        out += _string(1, scope.name)
    if scope.version:
        out += _string(2, scope.version)
    return out + _attributes(3, scope.attributes)


def _span(span: ReadableSpan) -> bytes:
    context = span.context
    parent = span.parent
    out = [b"\x0a\x10", context.trace_id.to_bytes(16, "big"), b"\x12\x08", context.span_id.to_bytes(8, "big")]
    trace_state = context.trace_state
    if trace_state:
        out.append(_string(3, ",".join(f"{k}={v}" for k, v in trace_state.items())))
    if parent is not None:
        out.append(b"\x22\x08" + parent.span_id.to_bytes(8, "big"))
    if span.name:
        out.append(_string(5, span.name))
    out.append(b"\x30" + _varint(_KIND[span.kind]))
    if span.start_time:
        out.append(b"\x39" + _pack_fixed64(span.start_time))
    if span.end_time:
        out.append(b"\x41" + _pack_fixed64(span.end_time))
    # The span's own mapping (a dict, or the SDK's bounded one) rather than the read-only view over it.
    # private: ReadableSpan._attributes, read only (absent: span.attributes)
    out.append(_attributes(9, getattr(span, "_attributes", None) or span.attributes))
    if span.dropped_attributes:
        out.append(b"\x50" + _varint(span.dropped_attributes))
    for event in span.events:
        body = b"\x09" + _pack_fixed64(event.timestamp) if event.timestamp else b""
        if event.name:
            body += _string(2, event.name)
        body += _attributes(3, event.attributes)
        if event.dropped_attributes:
            body += b"\x20" + _varint(event.dropped_attributes)
        out.append(_field(11, body))
    if span.dropped_events:
        out.append(b"\x60" + _varint(span.dropped_events))
    for link in span.links:
        body = (
            b"\x0a\x10"
            + link.context.trace_id.to_bytes(16, "big")
            + b"\x12\x08"
            + link.context.span_id.to_bytes(8, "big")
        )
        body += _attributes(4, link.attributes)
        if link.dropped_attributes:
            body += b"\x28" + _varint(link.dropped_attributes)
        flags = _FLAGS_HAS_IS_REMOTE | (_FLAGS_IS_REMOTE if link.context.is_remote else 0)
        body += b"\x35" + _pack_fixed32(flags)
        out.append(_field(13, body))
    if span.dropped_links:
        out.append(b"\x70" + _varint(span.dropped_links))
    status = span.status
    code = status.status_code.value
    status_body = (_string(2, status.description) if status.description else b"") + (
        b"\x18" + _varint(code) if code else b""
    )
    out.append(_field(15, status_body))
    flags = _FLAGS_HAS_IS_REMOTE | (_FLAGS_IS_REMOTE if parent is not None and parent.is_remote else 0)
    out.append(b"\x85\x01" + _pack_fixed32(flags))
    return b"".join(out)


def _grouped(items: Sequence[Any], encode: Any) -> list[tuple[Any, list[tuple[Any, list[bytes]]]]]:
    """``items`` encoded, grouped by resource and by scope in the order they first appear.

    Grouped by equality, as the SDK's encoder groups (a dict keyed by the
    resource and by the scope): equal resources or scopes that are distinct
    objects go out as one. Each distinct object is compared with the groups
    once; later items with it cost a lookup by identity.
    """
    grouped: dict[int, tuple[Any, dict[int, tuple[Any, list[bytes]]]]] = {}
    resources: dict[int, int] = {}  # id of a resource object -> id of the group's resource
    scopes: dict[tuple[int, int], int] = {}  # (group, id of a scope object) -> id of the group's scope
    for item in items:
        resource = item.resource
        scope = item.instrumentation_scope or None
        group = resources.get(id(resource))
        if group is None:
            group = resources[id(resource)] = _equal_key(resource, (r for r, _ in grouped.values()))
            if group not in grouped:
                grouped[group] = (resource, {})
        by_scope = grouped[group][1]
        in_group = scopes.get((group, id(scope)))
        if in_group is None:
            in_group = scopes[(group, id(scope))] = _equal_key(scope, (s for s, _ in by_scope.values()))
            if in_group not in by_scope:
                by_scope[in_group] = (scope, [])
        by_scope[in_group][1].append(encode(item))
    return [(resource, list(by_scope.values())) for resource, by_scope in grouped.values()]


def _equal_key(obj: Any, kept: Any) -> int:
    """The id of the kept object equal to ``obj``, or ``obj``'s own id when none is."""
    for other in kept:
        if other is obj or other == obj:
            return id(other)
    return id(obj)


def _request(groups: Sequence[tuple[Any, Sequence[tuple[Any, Sequence[bytes]]]]]) -> bytes:
    """An export request: Resource{Spans,Metrics,Logs} (field 1) each with Scope* (field 2) each with items (field 2).

    The three signals' messages share this shape and these field numbers.
    """
    out = []
    for resource, scopes in groups:
        body = [_field(1, _cached_block(resource, _resource))]
        for scope, items in scopes:
            scope_body = _field(1, _cached_block(scope, _scope)) + b"".join(_field(2, item) for item in items)
            if scope is not None and scope.schema_url:
                scope_body += _string(3, scope.schema_url)
            body.append(_field(2, scope_body))
        if resource.schema_url:
            body.append(_string(3, resource.schema_url))
        out.append(_field(1, b"".join(body)))
    return b"".join(out)


def encode_spans(spans: Sequence[ReadableSpan]) -> bytes:
    """Serialized ``ExportTraceServiceRequest`` for ``spans``, grouped by resource and scope."""
    return _request(_grouped(spans, _span))


def gzip_fast(data: bytes) -> bytes:
    """gzip at level 1: the format the receiver expects, at a fraction of level 9's cost."""
    compressor = zlib.compressobj(1, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


# --- metrics --------------------------------------------------------------


def _fixed64(number: int, value: int | None) -> bytes:
    """A fixed64 field (wire type 1), e.g. a timestamp or a count; left out when zero (or None) as proto3 does."""
    return _varint(number << 3 | 1) + _pack_fixed64(value) if value else b""


def _double(number: int, value: float) -> bytes:
    return _varint(number << 3 | 1) + _pack_double(value)


def _uint(number: int, value: int) -> bytes:
    """A varint field (wire type 0), left out when zero as proto3 does."""
    return _varint(number << 3) + _varint(value) if value else b""


def _zigzag(value: int) -> int:
    return (value << 1) ^ (value >> 63)


def _number_value(value: Any, as_double: int, as_int: int) -> bytes:
    """The ``oneof value`` of a data point or exemplar: an int as sfixed64, anything else as a double."""
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:  # as protobuf: a ValueError, never a wrong number
            raise ValueError(f"Value out of range: {value}")
        return _varint(as_int << 3 | 1) + _pack_sfixed64(value)
    return _double(as_double, value)


def _exemplars(number: int, exemplars: Sequence[Any]) -> bytes:
    out = []
    for exemplar in exemplars:
        value = exemplar.value
        if not isinstance(value, (int, float)):  # the SDK's encoder would fail the whole batch
            continue
        body = _attributes(7, exemplar.filtered_attributes) + _fixed64(2, exemplar.time_unix_nano)
        if exemplar.span_id is not None and exemplar.trace_id is not None:
            body += (
                b"\x22\x08" + exemplar.span_id.to_bytes(8, "big") + b"\x2a\x10" + exemplar.trace_id.to_bytes(16, "big")
            )
        body += _number_value(value, 3, 6)
        out.append(_field(number, body))
    return b"".join(out)


def _number_point(point: Any, with_start: bool) -> bytes:
    body = _attributes(7, point.attributes)
    if with_start:
        body += _fixed64(2, point.start_time_unix_nano)
    body += _fixed64(3, point.time_unix_nano)
    return body + _exemplars(5, point.exemplars) + _number_value(point.value, 4, 6)


def _histogram_head(point: Any) -> bytes:
    """Fields 2 to 5 (start, time, count, sum), numbered alike in both histograms' points."""
    body = _fixed64(2, point.start_time_unix_nano) + _fixed64(3, point.time_unix_nano) + _fixed64(4, point.count)
    return body + (_double(5, point.sum) if point.sum is not None else b"")


def _histogram_point(point: Any) -> bytes:
    body = [_attributes(9, point.attributes), _histogram_head(point)]
    if point.bucket_counts:
        body.append(_field(6, b"".join(_pack_fixed64(c) for c in point.bucket_counts)))
    if point.explicit_bounds:
        body.append(_field(7, b"".join(_pack_double(b) for b in point.explicit_bounds)))
    body.append(_exemplars(8, point.exemplars))
    if point.min is not None:
        body.append(_double(11, point.min))
    if point.max is not None:
        body.append(_double(12, point.max))
    return b"".join(body)


def _buckets(number: int, buckets: Any) -> bytes:
    if not buckets.bucket_counts:
        return b""
    body = _uint(1, _zigzag(buckets.offset)) + _field(2, b"".join(_varint(c) for c in buckets.bucket_counts))
    return _field(number, body)


def _exponential_point(point: Any) -> bytes:
    body = [_attributes(1, point.attributes), _histogram_head(point)]
    body.append(_uint(6, _zigzag(point.scale)))
    body.append(_fixed64(7, point.zero_count))
    body.append(_buckets(8, point.positive))
    body.append(_buckets(9, point.negative))
    body.append(_uint(10, point.flags))
    body.append(_exemplars(11, point.exemplars))
    if point.min is not None:
        body.append(_double(12, point.min))
    if point.max is not None:
        body.append(_double(13, point.max))
    return b"".join(body)


def _metric_data(data: Any, points: Sequence[Any]) -> bytes:
    """The ``oneof data`` of a Metric, with ``points`` (a slice of ``data.data_points``); empty as the SDK's."""
    from opentelemetry.sdk.metrics.export import ExponentialHistogram, Gauge, Histogram, Sum

    if not points:
        return b""
    if isinstance(data, Gauge):
        return _field(5, b"".join(_field(1, _number_point(p, False)) for p in points))
    temporality = _uint(2, int(data.aggregation_temporality))
    if isinstance(data, Histogram):
        return _field(9, b"".join(_field(1, _histogram_point(p)) for p in points) + temporality)
    if isinstance(data, Sum):
        body = b"".join(_field(1, _number_point(p, True)) for p in points) + temporality
        return _field(7, body + (b"\x18\x01" if data.is_monotonic else b""))
    if isinstance(data, ExponentialHistogram):
        return _field(10, b"".join(_field(1, _exponential_point(p)) for p in points) + temporality)
    _log.warning("unsupported data type %s", type(data).__name__)
    return b""


def _metric(metric: Any, points: Sequence[Any]) -> bytes:
    try:
        return _metric_message(metric, points)
    except Exception as error:  # noqa: BLE001 - raised as the SDK's encoder raises it
        # Imported only here: the SDK's encoder package loads the protobuf runtime.
        from opentelemetry.exporter.otlp.proto.common._internal.metrics_encoder import EncodingException

        raise EncodingException(error, metric) from None


def _metric_message(metric: Any, points: Sequence[Any]) -> bytes:
    body = b""
    if metric.name:
        body += _string(1, metric.name)
    if metric.description:
        body += _string(2, metric.description)
    if metric.unit:
        body += _string(3, metric.unit)
    return body + _metric_data(metric.data, points)


def metric_batches(metrics_data: Any, max_points: int | None = None) -> list[tuple[bytes, int]]:
    """Serialized ``ExportMetricsServiceRequest`` messages and the data points each holds.

    Without ``max_points`` (None, or 0, with which the SDK's exporter would
    send nothing at all) everything goes in one message. With it no message
    holds more than that many data points: a metric's points are split
    across messages, each keeping the metric's resource, scope, name and
    type, and metrics with no points are left out, as the SDK's exporter
    splits.
    """
    if not max_points or max_points <= 0:
        resources = [
            (
                rm,
                [(sm, [_metric(m, getattr(m.data, "data_points", ())) for m in sm.metrics]) for sm in rm.scope_metrics],
            )
            for rm in metrics_data.resource_metrics
        ]
        count = sum(
            len(getattr(m.data, "data_points", ()))
            for rm in metrics_data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        )
        return [(_metrics_request(resources), count)]
    batches: list[tuple[bytes, int]] = []
    current: list[tuple[Any, list[tuple[Any, list[bytes]]]]] = []
    count = 0
    for resource_metrics in metrics_data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                points = list(getattr(metric.data, "data_points", ()))
                while points:
                    chunk, points = points[: max_points - count], points[max_points - count :]
                    if not current or current[-1][0] is not resource_metrics:
                        current.append((resource_metrics, []))
                    scopes = current[-1][1]
                    if not scopes or scopes[-1][0] is not scope_metrics:
                        scopes.append((scope_metrics, []))
                    scopes[-1][1].append(_metric(metric, chunk))
                    count += len(chunk)
                    if count >= max_points:
                        batches.append((_metrics_request(current), count))
                        current, count = [], 0
    if count:
        batches.append((_metrics_request(current), count))
    return batches


def _metrics_request(resources: list[tuple[Any, list[tuple[Any, list[bytes]]]]]) -> bytes:
    return _request([(rm.resource, [(sm.scope, metrics) for sm, metrics in scopes]) for rm, scopes in resources])


def encode_metrics(metrics_data: Any) -> bytes:
    """Serialized ``ExportMetricsServiceRequest`` for the SDK's ``MetricsData``."""
    batches = metric_batches(metrics_data)
    return batches[0][0] if batches else b""


# --- logs -----------------------------------------------------------------


def _log_record(readable: Any) -> bytes:
    record = readable.log_record
    out = []
    out.append(_fixed64(1, record.timestamp))
    severity = getattr(record.severity_number, "value", None)
    if severity:
        out.append(_uint(2, severity))
    if record.severity_text:
        out.append(_string(3, record.severity_text))
    try:
        body = _any_value(record.body)
    except (TypeError, ValueError):  # the SDK's encoder would fail the whole batch
        body = _string(1, str(record.body))
    out.append(_field(5, body))
    out.append(_attributes(6, record.attributes))
    dropped = readable.dropped_attributes
    if dropped:
        out.append(_uint(7, dropped))
    flags = int(record.trace_flags or 0)
    if flags:
        out.append(b"\x45" + _pack_fixed32(flags))
    if record.trace_id:
        out.append(b"\x4a\x10" + record.trace_id.to_bytes(16, "big"))
    if record.span_id:
        out.append(b"\x52\x08" + record.span_id.to_bytes(8, "big"))
    out.append(_fixed64(11, record.observed_timestamp))
    if record.event_name:
        out.append(_string(12, record.event_name))
    return b"".join(out)


def encode_logs(batch: Sequence[Any]) -> bytes:
    """Serialized ``ExportLogsServiceRequest`` for the SDK's ``ReadableLogRecord``s, grouped by resource and scope."""
    return _request(_grouped(batch, _log_record))
