"""What the SDK's server span costs a request, against the least any span type could cost.

The span goes through what FastAPI's own telemetry does with it on every
request: started with its request attributes under otel-monitor's sampler
(production profile: 10% of traces sampled, the rest recorded only), the
server attributes set, renamed to its route, route and status set, ended;
no span processor. The lower bound does the same to a slotted object holding
a dict and two timestamps: no span type of our own could cost less. Their
difference is the most a span type of our own could take off a request::

    python -m benchmarks.server_span
"""

from __future__ import annotations

import argparse
import json
import time
import timeit
from typing import Any

REQUEST_ATTRIBUTES = {"url.scheme": "http", "http.request.method": "GET", "network.protocol.version": "1.1"}
SERVER_ATTRIBUTES = {"server.address": "127.0.0.1", "server.port": 8000, "url.path": "/ping",
                     "client.address": "127.0.0.1"}


class BareSpan:
    """The least a span can be: a name, attributes and two timestamps."""

    __slots__ = ("name", "attributes", "start_time", "end_time")

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
    """One request's span, as FastAPI's telemetry drives it."""
    span = start()
    span.set_attributes(SERVER_ATTRIBUTES)
    span.update_name("GET /ping")
    span.set_attribute("http.route", "/ping")
    span.set_attribute("http.response.status_code", 200)
    span.end()


def measure(number: int, repeat: int) -> dict[str, float]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased
    from opentelemetry.trace import SpanKind

    from otel_monitor.sampling import RecordAllSampler

    tracer = TracerProvider(sampler=RecordAllSampler(ParentBased(TraceIdRatioBased(0.1)))).get_tracer("fastapi")

    def sdk() -> Any:
        return tracer.start_span("GET", kind=SpanKind.SERVER, attributes=REQUEST_ATTRIBUTES)

    def bare() -> Any:
        return BareSpan("GET", REQUEST_ATTRIBUTES)

    result = {}
    for name, start in (("sdk_span_us", sdk), ("bare_span_us", bare)):
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
    print(f"bare span (dict and two timestamps):                        {result['bare_span_us']:.2f} µs per request")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
