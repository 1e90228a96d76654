"""External probes: request URLs as a user outside would, and report what the collector's
``httpcheck`` receiver reports, under its names, so the same uptime rules read either.

Per probe of a URL (as httpcheck does):

- ``httpcheck.status``: a non-monotonic cumulative sum, one point per status class
  (1xx..5xx) with ``http.url``, ``http.method``, ``http.status_code`` (0 when no
  answer came) and ``http.status_class``: 1 on the class of the answer, 0 on the others;
- ``httpcheck.duration``: a gauge, milliseconds, with ``http.url``;
- ``httpcheck.error``: a non-monotonic cumulative sum of 1 with ``http.url`` and
  ``error.message``, only when no answer came (refused, timed out, bad TLS).

The points are built here and handed to an OTLP metric exporter as they are:
no SDK aggregation, so a status code that changed is not reported again.
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.util.types import AnyValue

from otel_monitor import semconv
from otel_monitor.semantics.uptime import Probe

SCOPE = InstrumentationScope("otel_monitor.probe")
# How much of an answer's body is read before the connection is closed: the
# status is what counts, and a large page must not cost memory.
BODY_LIMIT = 64 * 1024
MAX_PARALLEL = 8
USER_AGENT = "otel-monitor-probe"


@dataclass(frozen=True)
class ProbeResult:
    """One request to one URL: its status code (0 when no answer came), duration and error."""

    url: str
    method: str
    status_code: int
    duration_ms: int
    error: str | None
    time_ns: int

    @property
    def up(self) -> bool:
        """Answered 2xx: the uptime rules count this probe as up."""
        return 200 <= self.status_code < 300

    @property
    def status_class(self) -> str | None:
        return f"{self.status_code // 100}xx" if 100 <= self.status_code < 600 else None


# Redirects are followed, as the httpcheck receiver's client does; a 4xx or 5xx
# answer arrives as HTTPError, and is an answer all the same.
_OPENER = urllib.request.build_opener()


def probe_once(probe: Probe, timeout: float) -> ProbeResult:
    """Request ``probe.url`` once; never raises (a failure is the result's ``error``)."""
    request = urllib.request.Request(probe.url, method=probe.method, headers={"User-Agent": USER_AGENT})
    start = time.perf_counter()
    status, error = 0, None
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(BODY_LIMIT)
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        status = int(exc.code)
        exc.close()
    except Exception as exc:  # noqa: BLE001 - every failure to get an answer is the probe's result
        reason = getattr(exc, "reason", None)
        error = str(reason if reason is not None else exc) or type(exc).__name__
    duration_ms = int((time.perf_counter() - start) * 1000)
    return ProbeResult(probe.url, probe.method, status, duration_ms, error, time.time_ns())


def probe_all(probes: Sequence[Probe], timeout: float) -> list[ProbeResult]:
    """Probe every URL, at most :data:`MAX_PARALLEL` at once, in the order given."""
    if not probes:
        return []
    with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL, len(probes)), thread_name_prefix="otel-probe") as pool:
        return list(pool.map(lambda p: probe_once(p, timeout), probes))


def metrics_data(results: Iterable[ProbeResult], resource: Resource, start_ns: int) -> MetricsData:
    """The httpcheck receiver's three metrics for ``results``, as one OTLP export."""
    status: list[NumberDataPoint] = []
    duration: list[NumberDataPoint] = []
    errors: list[NumberDataPoint] = []
    for r in results:
        for status_class in semconv.HTTPCHECK_STATUS_CLASSES:
            attributes: dict[str, AnyValue] = {
                semconv.HTTPCHECK_URL: r.url,
                semconv.HTTPCHECK_STATUS_CODE: r.status_code,
                semconv.HTTPCHECK_METHOD: r.method,
                semconv.HTTPCHECK_STATUS_CLASS: status_class,
            }
            value = 1 if r.status_class == status_class else 0
            status.append(NumberDataPoint(attributes, start_ns, r.time_ns, value))
        duration.append(NumberDataPoint({semconv.HTTPCHECK_URL: r.url}, start_ns, r.time_ns, r.duration_ms))
        if r.error is not None:
            failed: dict[str, AnyValue] = {semconv.HTTPCHECK_URL: r.url, semconv.HTTPCHECK_ERROR_MESSAGE: r.error}
            errors.append(NumberDataPoint(failed, start_ns, r.time_ns, 1))
    cumulative = AggregationTemporality.CUMULATIVE
    metrics = [
        Metric(
            semconv.METRIC_HTTPCHECK_STATUS,
            "1 if the check resulted in status_code matching the status_class, otherwise 0.",
            "1",
            Sum(status, cumulative, is_monotonic=False),
        ),
        Metric(semconv.METRIC_HTTPCHECK_DURATION, "Measures the duration of the HTTP check.", "ms", Gauge(duration)),
    ]
    if errors:
        metrics.append(
            Metric(
                semconv.METRIC_HTTPCHECK_ERROR,
                "Records errors occurring during HTTP check.",
                "{error}",
                Sum(errors, cumulative, is_monotonic=False),
            )
        )
    return MetricsData([ResourceMetrics(resource, [ScopeMetrics(SCOPE, metrics, "")], "")])
