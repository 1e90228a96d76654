"""The exported copy of a span: the public constructor and the launcher's light copy agree."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanLimits, TracerProvider
from opentelemetry.trace import Status, StatusCode

from otel_monitor.fast.span_copy import light_copy
from otel_monitor.pipeline.processors import copy_span


def ended_span():
    provider = TracerProvider(span_limits=SpanLimits(max_events=2), resource=Resource({"service.name": "shop"}))
    with provider.get_tracer("t").start_as_current_span("GET /pay", attributes={"card": "4111"}) as span:
        for i in range(5):
            span.add_event(f"e{i}")
    return span


def fields(span):
    return {
        "name": span.name,
        "attributes": dict(span.attributes),
        "resource": dict(span.resource.attributes),
        "events": [e.name for e in span.events],
        "links": list(span.links),
        "status": (span.status.status_code, span.status.description),
        "context": span.context,
        "parent": span.parent,
        "kind": span.kind,
        "times": (span.start_time, span.end_time),
        "scope": span.instrumentation_scope,
    }


def test_both_copies_change_the_same_fields_and_leave_the_span_alone():
    """Name, attributes, resource and status replaced alike; every other field kept; the original untouched."""
    span = ended_span()
    before = fields(span)
    changes = ("GET /pay [redacted]", {"card": "[REDACTED]"}, Resource({"service.name": "shop2"}))
    status = Status(StatusCode.ERROR, "declined")
    public, light = copy_span(span, *changes, status=status), light_copy(span, *changes, status=status)
    assert fields(public) == fields(light)
    assert fields(light)["attributes"] == {"card": "[REDACTED]"} and light.status.status_code is StatusCode.ERROR
    assert fields(light)["events"] == before["events"] and fields(light)["context"] == before["context"]
    assert fields(span) == before


def test_the_light_copy_keeps_what_the_sdk_dropped():
    """The SDK's count of dropped events survives the light copy; the public constructor cannot see it."""
    span = ended_span()
    assert span.dropped_events == 3
    assert light_copy(span, span.name, dict(span.attributes), span.resource).dropped_events == 3
    assert copy_span(span, span.name, dict(span.attributes), span.resource).dropped_events == 0
