"""Decoding OTLP/HTTP request bodies (protobuf or JSON) into plain dicts.

Used by the local console and by :mod:`otel_monitor.testing`.  Built on
``opentelemetry-proto``; JSON follows the OTLP/JSON mapping (hex trace and
span ids, lowerCamelCase field names, enum values as integers).
"""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Callable
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue

REQUEST_TYPES: dict[str, Any] = {
    "traces": ExportTraceServiceRequest,
    "metrics": ExportMetricsServiceRequest,
    "logs": ExportLogsServiceRequest,
}


class OTLPDecodeError(ValueError):
    """The body is not a valid OTLP export request; the message says why."""


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """Undo ``Content-Encoding`` (gzip, deflate or none), refusing to inflate past ``limit``."""
    encoding = (encoding or "").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise OTLPDecodeError(f"unsupported Content-Encoding {encoding!r}; use gzip, deflate or none")
    wbits = 16 + zlib.MAX_WBITS if encoding == "gzip" else zlib.MAX_WBITS
    inflater = zlib.decompressobj(wbits)
    try:
        out = inflater.decompress(body, limit + 1)
    except zlib.error as exc:
        raise OTLPDecodeError(f"body is not valid {encoding}: {exc}") from None
    if len(out) > limit:
        raise OTLPDecodeError(f"decompressed body exceeds the {limit} byte limit")
    if not inflater.eof:
        raise OTLPDecodeError(f"body is truncated {encoding} data")
    return out


def media_type(content_type: str | None) -> str:
    """``Content-Type`` without its parameters, lower case: ``application/json; charset=utf-8`` is JSON."""
    return (content_type or "").split(";")[0].strip().lower()


def parse_request(signal: str, body: bytes, content_type: str | None) -> Any:
    """Parse a body into the signal's ``Export*ServiceRequest`` message."""
    message = REQUEST_TYPES[signal]()
    kind = media_type(content_type)
    if kind in ("application/x-protobuf", "application/protobuf"):
        try:
            message.ParseFromString(body)
        except (DecodeError, ValueError, RecursionError) as exc:
            raise OTLPDecodeError(f"body is not a valid protobuf {message.DESCRIPTOR.name}: {exc}") from None
    elif kind == "application/json":
        try:
            document = json.loads(body.decode("utf-8"))
            if not isinstance(document, dict):
                raise ValueError(f"expected a JSON object, got {type(document).__name__}")
            hex_ids_to_base64(document)
            json_format.ParseDict(document, message, ignore_unknown_fields=True)
        except (
            json_format.ParseError,
            UnicodeDecodeError,
            ValueError,
            TypeError,
            AttributeError,
            RecursionError,
        ) as exc:
            raise OTLPDecodeError(f"body is not valid OTLP/JSON for {message.DESCRIPTOR.name}: {exc}") from None
    else:
        raise OTLPDecodeError(
            f"unsupported Content-Type {content_type!r}; use application/x-protobuf or application/json"
        )
    return message


# OTLP/JSON writes trace and span ids as hex strings (not base64, which is what
# protobuf's own JSON mapping expects of a bytes field): id field -> its size in bytes.
_ID_FIELDS = {"traceId": 16, "trace_id": 16, "spanId": 8, "span_id": 8, "parentSpanId": 8, "parent_span_id": 8}


def _id_as_base64(value: str, size: int) -> str:
    """A hex id as protobuf's JSON mapping wants it; anything else unchanged (base64 from older senders)."""
    if len(value) == 2 * size:
        try:
            return base64.b64encode(bytes.fromhex(value)).decode("ascii")
        except ValueError:
            return value
    return value


def hex_ids_to_base64(document: Any) -> None:
    """Rewrite, in place, every trace and span id of an OTLP/JSON document from hex to base64.

    Covers spans, span links, log records and metric exemplars alike: every
    object member named as an id.  Iterative, so a deeply nested body costs no
    recursion.
    """
    pending = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                size = _ID_FIELDS.get(key)
                if size is not None and isinstance(value, str):
                    node[key] = _id_as_base64(value, size)
                elif isinstance(value, (dict, list)):
                    pending.append(value)
        elif isinstance(node, list):
            pending.extend(item for item in node if isinstance(item, (dict, list)))


def any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [any_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind)


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in kvs}


def _resource(rs: Any) -> dict[str, Any]:
    return attributes(rs.resource.attributes)


def flatten_spans(req: ExportTraceServiceRequest) -> list[dict[str, Any]]:
    """One dict per span with its resource and scope attached."""
    out = []
    for rs in req.resource_spans:
        resource = _resource(rs)
        for ss in rs.scope_spans:
            for s in ss.spans:
                out.append(
                    {
                        "resource": resource,
                        "scope": ss.scope.name,
                        "trace_id": s.trace_id.hex(),
                        "span_id": s.span_id.hex(),
                        "parent_span_id": s.parent_span_id.hex(),
                        "name": s.name,
                        "kind": s.kind,
                        "start_time_unix_nano": s.start_time_unix_nano,
                        "end_time_unix_nano": s.end_time_unix_nano,
                        "attributes": attributes(s.attributes),
                        "events": [
                            {"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": attributes(e.attributes)}
                            for e in s.events
                        ],
                        "status_code": s.status.code,
                        "status_message": s.status.message,
                        "links": [
                            {
                                "trace_id": link.trace_id.hex(),
                                "span_id": link.span_id.hex(),
                                "attributes": attributes(link.attributes),
                            }
                            for link in s.links
                        ],
                    }
                )
    return out


def flatten_logs(req: ExportLogsServiceRequest) -> list[dict[str, Any]]:
    """One dict per log record with its resource and scope attached."""
    out = []
    for rl in req.resource_logs:
        resource = _resource(rl)
        for sl in rl.scope_logs:
            for r in sl.log_records:
                out.append(
                    {
                        "resource": resource,
                        "scope": sl.scope.name,
                        "time_unix_nano": r.time_unix_nano or r.observed_time_unix_nano,
                        "severity_number": r.severity_number,
                        "severity_text": r.severity_text,
                        "body": any_value(r.body),
                        "attributes": attributes(r.attributes),
                        "event_name": r.event_name,
                        "trace_id": r.trace_id.hex(),
                        "span_id": r.span_id.hex(),
                    }
                )
    return out


def flatten_metrics(req: ExportMetricsServiceRequest) -> list[dict[str, Any]]:
    """One dict per data point: metric name, type, attributes and values."""
    out = []
    for rm in req.resource_metrics:
        resource = _resource(rm)
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                if kind is None:
                    continue
                data = getattr(m, kind)
                for p in data.data_points:
                    point: dict[str, Any] = {
                        "resource": resource,
                        "scope": sm.scope.name,
                        "name": m.name,
                        "unit": m.unit,
                        "type": kind,
                        "attributes": attributes(p.attributes),
                        "start_time_unix_nano": p.start_time_unix_nano,
                        "time_unix_nano": p.time_unix_nano,
                    }
                    if kind in ("sum", "gauge"):
                        point["value"] = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                        if kind == "sum":
                            point["monotonic"] = data.is_monotonic
                            point["temporality"] = data.aggregation_temporality
                    elif kind == "histogram":
                        point.update(
                            count=p.count,
                            sum=p.sum,
                            bucket_counts=list(p.bucket_counts),
                            explicit_bounds=list(p.explicit_bounds),
                            temporality=data.aggregation_temporality,
                            min=p.min if p.HasField("min") else None,
                            max=p.max if p.HasField("max") else None,
                        )
                    elif kind == "exponential_histogram":
                        point.update(count=p.count, sum=p.sum, temporality=data.aggregation_temporality)
                    elif kind == "summary":
                        point.update(count=p.count, sum=p.sum)
                    out.append(point)
    return out


FLATTEN: dict[str, Callable[[Any], list[dict[str, Any]]]] = {
    "traces": flatten_spans,
    "metrics": flatten_metrics,
    "logs": flatten_logs,
}

__all__ = [
    "FLATTEN",
    "OTLPDecodeError",
    "any_value",
    "attributes",
    "decompress",
    "flatten_logs",
    "flatten_metrics",
    "flatten_spans",
    "media_type",
    "parse_request",
]
