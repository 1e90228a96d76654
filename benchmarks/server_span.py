"""What the SDK's server span costs a request, against the least any span type could cost.

The span goes through the calls FastAPI's own telemetry (0.165,
``fastapi/telemetry``) makes on it for a successful GET: started with the
request and server attributes and the path under otel-monitor's sampler
(production profile: 10% of traces sampled, the rest recorded only), made
current with ``use_span`` while the app runs, given its route and renamed
when the route is selected, given the final attributes in one call, ended;
no span processor; then the same with otel-monitor's span type
(:mod:`otel_monitor.fast.spans`, ``OTEL_MONITOR_LEAN_SPANS``). The lower bound does
the same to a slotted object holding a dict and two timestamps: no span type
could cost less (it would still need ids, a sampling decision and a context).
The SDK's figure less the bound is the most any span type could take off a
request::

    python -m benchmarks.server_span
"""

from __future__ import annotations

import argparse
import json
import time
import timeit
from typing import Any

REQUEST_ATTRIBUTES = {"url.scheme": "http", "http.request.method": "GET", "network.protocol.version": "1.1"}
START_ATTRIBUTES = {**REQUEST_ATTRIBUTES, "server.address": "127.0.0.1", "server.port": 8000, "url.path": "/ping"}
FINAL_ATTRIBUTES = {**REQUEST_ATTRIBUTES, "http.route": "/ping", "http.response.status_code": 200}


class BareSpan:
    """The least a span can be: a name, attributes and two timestamps."""

    __slots__ = ("attributes", "end_time", "name", "start_time")

    def __init__(self, name: str, attributes: dict[str, Any]) -> None:
        self.name = name
        self.attributes = dict(attributes)
        self.start_time = time.time_ns()
        self.end_time = 0

    def set_attributes(self, attributes: dict[str, Any]) -> None:
        self.attributes.update(attributes)

    def set_attribute(self, key: str, value: Any) -> None:
        self.attributes[key] = value

    def update_name(self, name: str) -> None:
        self.name = name

    def end(self) -> None:
        self.end_time = time.time_ns()


def request_lifecycle(start: Any) -> None:
    """One request's span, as FastAPI's telemetry drives it for a successful GET."""
    from opentelemetry import trace

    span = start()
    with trace.use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        span.set_attribute("http.route", "/ping")  # the route is selected
        span.update_name("GET /ping")
    span.set_attributes(FINAL_ATTRIBUTES)  # the response is sent
    span.end()


def measure(number: int, repeat: int) -> dict[str, float]:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace import SpanKind

    from otel_monitor.fast import spans
    from otel_monitor.pipeline.tail_sampling import RecordAllSampler

    tracer = TracerProvider(sampler=RecordAllSampler(ParentBased(TraceIdRatioBased(0.1)))).get_tracer("fastapi")
    lean_provider = TracerProvider(sampler=RecordAllSampler(ParentBased(TraceIdRatioBased(0.1))))
    spans.install(lean_provider)
    lean_tracer = lean_provider.get_tracer("fastapi")

    parent = Context()

    def sdk() -> Any:
        return tracer.start_span("GET", context=parent, kind=SpanKind.SERVER, attributes=START_ATTRIBUTES)

    def lean() -> Any:
        return lean_tracer.start_span("GET", context=parent, kind=SpanKind.SERVER, attributes=START_ATTRIBUTES)

    def bare() -> Any:
        return BareSpan("GET", START_ATTRIBUTES)

    result = {}
    for name, start in (("sdk_span_us", sdk), ("otel_monitor_span_us", lean), ("bare_span_us", bare)):
        best = min(timeit.repeat(lambda start=start: request_lifecycle(start), number=number, repeat=repeat))
        result[name] = best / number * 1e6
    result["most_a_span_type_could_save_us"] = result["sdk_span_us"] - result["bare_span_us"]
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=20_000, help="span lifecycles per timing")
    parser.add_argument("--repeat", type=int, default=7, help="timings; the best is reported")
    args = parser.parse_args(argv)
    result = measure(args.number, args.repeat)
    print(f"SDK server span, recorded, as FastAPI's telemetry drives it: {result['sdk_span_us']:.2f} µs per request")
    print(
        f"otel-monitor's span type, the same calls:                   {result['otel_monitor_span_us']:.2f} µs per request"
    )
    print(f"bare span (dict and two timestamps):                        {result['bare_span_us']:.2f} µs per request")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
