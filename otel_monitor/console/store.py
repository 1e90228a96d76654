"""Bounded in-memory storage for the console, aggregated on ingest.

Spans and logs are kept as plain dicts up to a limit (oldest trace / record
out first, evictions counted).  Everything the views count is rolled up per
minute as it arrives, so a query over 24 hours reads at most 1,440 small
records per series instead of every span:

- operation histograms from ``monitor.operation.duration`` (exact: metrics see
  every call even when traces are sampled), and the same from operation spans
  as the fallback for apps that send no metrics;
- counters (cache requests, fallbacks) as per-minute deltas: cumulative points
  are differenced per process, a lower value or a new start time is a restart;
- health gauges per check, error groups by fingerprint, funnel users per step.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import OrderedDict, defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from otel_monitor import semconv
from otel_monitor.console.error_groups import ErrorGroup, ErrorGrouper
from otel_monitor.console.liveness import ExportCadence
from otel_monitor.console.metric_series import MetricSeries
from otel_monitor.console.search_index import LogIndex, SearchIndex, TraceList
from otel_monitor.semantics.errors import call_outcome
from otel_monitor.semantics.slo import SLOs

MINUTE_NS = 60_000_000_000
RETENTION_MINUTES = 24 * 60 + 5
_DELTA = 1  # AggregationTemporality.DELTA in OTLP
_STATUS_ERROR = 2
_SERVER_KIND = 2


@dataclass(frozen=True)
class Limits:
    """What the store keeps at most; the oldest goes first."""

    max_spans: int = 20_000
    max_logs: int = 20_000
    max_error_groups: int = 1_000
    max_series: int = 20_000
    max_users_per_step: int = 100_000
    max_incidents: int = 1_000
    # Span ids remembered to recognise one received again (an exporter's retry).
    max_span_ids: int = 20_000
    max_metrics: int = 2_000  # (service, metric name) entries of the metric list
    # Services (service.name) and instances (service, service.instance.id) kept: the least recently
    # heard from goes first, a service with everything the store kept of it.
    max_services: int = 10_000
    max_instances: int = 10_000
    # Series (metric, instance, attribute set) the metrics explorer keeps per-minute values of.
    max_metric_series: int = 5_000
    # Attribute keys trace search keeps an index of (those searched most recently).
    max_indexed_keys: int = 16


class Histogram:
    """Counts per explicit bucket (sparse: index -> count), with the observed extremes.

    ``add`` re-buckets when boundaries differ.  ``min`` and ``max`` are the
    smallest and largest call seen (exact from spans and from a histogram point
    whose extremes changed; otherwise bounded within one bucket).
    """

    __slots__ = ("bounds", "buckets", "categories", "count", "errors", "max", "min", "outcomes", "sum")

    def __init__(self) -> None:
        self.count = 0
        self.errors = 0
        # Calls by monitor.operation.outcome other than success (client errors, server errors).
        self.outcomes: dict[str, int] = {}
        self.sum = 0.0
        self.bounds: tuple[float, ...] | None = None
        self.buckets: dict[int, int] = {}
        self.categories: dict[str, int] = {}
        self.min: float | None = None
        self.max: float | None = None

    def add(
        self,
        bounds: tuple[float, ...],
        buckets: Sequence[int] | Mapping[int, int],
        total: float,
        count: int,
        category: str | None,
        low: float | None = None,
        high: float | None = None,
        outcome: str | None = None,
    ) -> None:
        self.count += count
        self.sum += total
        if outcome is not None and outcome != "success":
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + count
        if category is not None:
            self.errors += count
            self.categories[category] = self.categories.get(category, 0) + count
        if low is not None and (self.min is None or low < self.min):
            self.min = low
        if high is not None and (self.max is None or high > self.max):
            self.max = high
        if self.bounds is None:
            self.bounds = bounds
        mine, target = self.buckets, self.bounds
        same = bounds is target or bounds == target
        for i, c in buckets.items() if isinstance(buckets, Mapping) else enumerate(buckets):
            if not c:
                continue
            # Different boundaries (another process, another config): each source
            # bucket goes to the target bucket holding its upper bound.
            j = i if same else bisect_left(target, bounds[i] if i < len(bounds) else float("inf"))
            mine[j] = mine.get(j, 0) + c

    def merge(self, other: Histogram) -> None:
        if other.bounds is None:
            return
        self.add(other.bounds, other.buckets, other.sum, other.count, None, other.min, other.max)
        self.errors += other.errors
        for k, v in other.categories.items():
            self.categories[k] = self.categories.get(k, 0) + v
        for k, v in other.outcomes.items():
            self.outcomes[k] = self.outcomes.get(k, 0) + v

    def percentile(self, q: float) -> float | None:
        """The q-th call's duration: never below ``min`` nor above ``max``."""
        found = self.locate(q)
        return None if found is None else found[0]

    def locate(self, q: float) -> tuple[float, float | None] | None:
        """``(estimate, relative error bound)`` of the q-th percentile.

        The bucket holding the q-th call, narrowed to the observed extremes, holds
        both the true value and the estimate (interpolated linearly inside it, as
        Prometheus' ``histogram_quantile`` does), so the estimate is off by at
        most that interval's width over its lower end.  None as the bound when
        the interval starts at zero (no minimum known).
        """
        bounds = self.bounds
        if not self.count or bounds is None or not self.buckets:
            return None
        rank = q * self.count
        cumulative = 0
        index = max(self.buckets)
        for i in sorted(self.buckets):
            c = self.buckets[i]
            if cumulative + c >= rank:
                index = i
                break
            cumulative += c
        c = self.buckets[index]
        lower = bounds[index - 1] if 0 < index <= len(bounds) else 0.0
        upper = bounds[index] if index < len(bounds) else float("inf")
        if self.min is not None:
            lower = min(max(lower, self.min), upper)
        if self.max is not None:
            upper = max(min(upper, self.max), lower)
        if upper == float("inf"):  # the overflow bucket and no maximum: its lower bound is all we know
            return lower, None
        estimate = lower + (upper - lower) * min(1.0, max(0.0, (rank - cumulative) / c))
        return estimate, ((upper - lower) / lower if lower > 0 else None)


class CallTimeline:
    """Cumulative calls of one series at the times they were reported: the last few minutes of them.

    Throughput is a rate over the last minute, so older points are dropped; the
    newest dropped one stays as the floor the rest count from.  Spans join the
    point of their time step (late ones the newest point), metric points each
    make one.
    """

    __slots__ = ("floor", "points", "start_ns")

    KEEP_NS = 3 * MINUTE_NS

    def __init__(self, start_ns: int, calls_before: float = 0.0) -> None:
        self.start_ns = start_ns
        self.floor: tuple[int, float] = (start_ns, calls_before)
        self.points: deque[list[float]] = deque()  # [time ns, cumulative calls]

    @property
    def last_ns(self) -> int:
        return int(self.points[-1][0]) if self.points else self.start_ns

    def add(self, t_ns: int, calls: float, step_ns: int = 0) -> None:
        points = self.points
        last = points[-1] if points else None
        if last is not None and (t_ns <= last[0] or (step_ns and t_ns // step_ns == last[0] // step_ns)):
            last[0] = max(last[0], t_ns)
            last[1] += calls
        else:
            points.append([t_ns, (last[1] if last is not None else self.floor[1]) + calls])
        while len(points) > 2 and points[1][0] < t_ns - self.KEEP_NS:
            t, c = points.popleft()
            self.floor = (int(t), c)

    def set_total(self, t_ns: int, cumulative: float) -> None:
        """A cumulative metric point: the series' total calls at ``t_ns``."""
        last = self.points[-1][1] if self.points else self.floor[1]
        self.add(t_ns, max(0.0, cumulative - last))

    def at(self, t_ns: int) -> float:
        """Calls up to ``t_ns``, linear between reported points."""
        prev_t: float = self.floor[0]
        prev_c = self.floor[1]
        if t_ns <= prev_t:
            return prev_c
        for t, c in self.points:
            if t_ns < t:
                return prev_c + (c - prev_c) * (t_ns - prev_t) / (t - prev_t)
            prev_t, prev_c = t, c
        return prev_c


@dataclass
class TraceSummary:
    trace_id: str
    spans: list[dict[str, Any]] = field(default_factory=list)
    services: set[str] = field(default_factory=set)
    start_ns: int = 0
    end_ns: int = 0
    root_name: str = ""
    error: bool = False
    # What a search by operation matches, kept as spans arrive so a search reads no span:
    # span names, and each span's monitor.operation (else its HTTP operation).
    names: set[str] = field(default_factory=set)
    # A span name holds two "/" or more: a path the search also matches shortened (one "/" is never cut).
    slashed: bool = False
    # Those shortened names, worked out by the first search that needs them (None: not yet, or a span came since).
    display_names: frozenset[str] | None = None
    # Its number in arrival order, and its duration's bucket (see search_index).
    seq: int = 0
    duration_bucket: int = -1

    def row(self) -> dict[str, Any]:
        """The trace as a row of a trace list."""
        return {
            "trace_id": self.trace_id,
            "name": self.root_name,
            "services": sorted(self.services),
            "start": self.start_ns // 1_000_000,
            "duration_ms": (self.end_ns - self.start_ns) / 1e6,
            "spans": len(self.spans),
            "error": self.error,
        }


def _hashable(value: Any) -> Any:
    return value if isinstance(value, (str, int, float, bool)) or value is None else repr(value)


def _attrs_key(attrs: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, _hashable(v)) for k, v in attrs.items()))


# A metric's distinct attribute sets are counted up to this many.
_MAX_SERIES_COUNTED = 1000
# Three of the SDKs' default 60 s metric export intervals.
DEFAULT_STALE_AFTER_NS = 3 * 60 * 1_000_000_000


def http_operation(attrs: dict[str, Any], name: str) -> str:
    """The operation of a standard HTTP server span or point: "GET /items/{id}", its name without a route."""
    method = attrs.get(semconv.HTTP_REQUEST_METHOD) or attrs.get(semconv.HTTP_METHOD_OLD)
    route = attrs.get(semconv.HTTP_ROUTE)
    if route:
        return f"{method} {route}" if method else str(route)
    return name or str(method or "HTTP")


def http_failed(attrs: dict[str, Any], otherwise: bool, client_errors_fail: bool = False) -> bool:
    """A server's 5xx fails, any other status code (4xx included, unless ``client_errors_fail``) succeeds;
    without one, ``otherwise``."""
    code: Any = attrs.get(semconv.HTTP_RESPONSE_STATUS_CODE, attrs.get(semconv.HTTP_STATUS_CODE_OLD))
    try:
        return int(code) >= (400 if client_errors_fail else 500)
    except (TypeError, ValueError):
        return otherwise


def _outcome(attrs: dict[str, Any], failed: bool) -> str:
    """The call's monitor.operation.outcome: as sent, else worked out from its status code (any SDK)."""
    sent = attrs.get(semconv.MONITOR_OPERATION_OUTCOME)
    if sent in semconv.OPERATION_OUTCOMES:
        return str(sent)
    code: Any = attrs.get(semconv.HTTP_RESPONSE_STATUS_CODE, attrs.get(semconv.HTTP_STATUS_CODE_OLD))
    try:
        status = int(code)
    except (TypeError, ValueError):
        status = None
    # A 4xx answer keeps its client outcome even when it counts as a failure (--client-errors-fail).
    client_error = status is not None and 400 <= status < 500
    return call_outcome(failed and not client_error, status, attrs.get(semconv.ERROR_TYPE))


class ServiceRollups:
    """What the store keeps of one service, indexed by it: queries read only their service's own
    roll-ups, and evicting the service drops them whole."""

    __slots__ = (
        "counters",
        "health",
        "health_minutes",
        "instances",
        "journeys",
        "metrics_minute",
        "op_metrics",
        "op_spans",
        "timelines",
    )

    def __init__(self) -> None:
        # (operation, minute) -> Histogram, from the duration metric and from operation spans
        self.op_metrics: dict[tuple[str, int], Histogram] = {}
        self.op_spans: dict[tuple[str, int], Histogram] = {}
        # The newest minute of ``op_metrics``: whether the service sent the metric in a window.
        self.metrics_minute = -1
        # (source, operation, series) -> calls over the last minutes, for throughput;
        # source is "metrics" or "spans", as for the histograms above.
        self.timelines: dict[tuple[str, str, Any], CallTimeline] = {}
        # (metric, minute, attrs) -> delta sum
        self.counters: dict[tuple[str, int, tuple[tuple[str, Any], ...]], float] = defaultdict(float)
        # check -> {instance: (value, critical, time_ns)}
        self.health: dict[str, dict[str, tuple[float, bool, int]]] = {}
        # (check, minute) -> [samples, samples not down]
        self.health_minutes: dict[tuple[str, int], list[int]] = {}
        # (journey, step) -> {pseudo id: last time reached (ns)}
        self.journeys: dict[tuple[str, str], OrderedDict[str, int]] = {}
        # service.instance.id of the instances kept ("" when the sender sets none), first seen first
        self.instances: dict[str, None] = {}


# Spans and log records waiting for their counterpart (see Store._logged_exceptions).
_MAX_WAITING = 1000


def _remember(table: OrderedDict[str, Any], span_id: str, value: Any) -> None:
    table[span_id] = value
    if len(table) > _MAX_WAITING:
        table.popitem(last=False)


def _fill_stack(group: ErrorGroup, message: str, stacktrace: str) -> None:
    group.stacktrace = stacktrace
    group.message = group.message or message


class Store:
    """Everything the console knows; thread-safe, bounded."""

    def __init__(self, slos: SLOs | None = None, limits: Limits | None = None) -> None:
        self.slos = slos or SLOs()
        # The boundaries span durations are counted in, computed once (ingest counts every span).
        self._span_bounds = self.slos.buckets
        self.limits = limits or Limits()
        self.lock = threading.RLock()
        self.started_ns = time.time_ns()
        self.received: dict[str, int] = defaultdict(int)
        self.evicted: dict[str, int] = defaultdict(int)
        self.services: dict[str, int] = {}  # service -> last seen (ns)
        # service -> its roll-ups, the most recently heard from last (evicted from the front)
        self.rollups: OrderedDict[str, ServiceRollups] = OrderedDict()
        # (service, service.instance.id) -> last seen (ns); "" when the sender sets no instance id
        self.instances: OrderedDict[tuple[str, str], int] = OrderedDict()
        # (service, instance) -> CPU (cores busy, from process.cpu.time) and memory (process.memory.usage)
        self.instance_usage: dict[tuple[str, str], InstanceUsage] = {}
        # (service, service.instance.id) -> first seen (ns) and the latest resource attributes it sent
        self.instance_first_seen: dict[tuple[str, str], int] = {}
        self.instance_resources: dict[tuple[str, str], dict[str, Any]] = {}
        # Every metric's per-minute values, for the metrics explorer.
        self.metric_series = MetricSeries(self.limits.max_metric_series, self.evicted, Histogram)
        self.log_seq = 0  # numbers log records in arrival order (the live tail asks for newer ones)
        self.log_index = LogIndex()  # what log search reads instead of every record
        # Silent for longer than this, a service or instance is stale: its checks
        # no longer count and the service shows "stale" (the console sets it).
        self.stale_after_ns = DEFAULT_STALE_AFTER_NS
        # Each sender's metric export interval, learnt from its points: the stale-after of a sender
        # whose interval is known is that many of its intervals (the console sets the number).
        self.export_cadence = ExportCadence(max_instances=self.limits.max_instances)
        # --client-errors-fail: a plain SDK's 4xx answers fail, as OTEL_MONITOR_CLIENT_ERRORS_FAIL does in apps.
        self.client_errors_fail = False
        # Services that send otel-monitor's own operations: their standard HTTP
        # spans and metrics describe the same requests and are not counted again.
        self.monitored_services: set[str] = set()
        self._span_ids: OrderedDict[str, None] = OrderedDict()
        # (service, metric name) -> what the metric list shows of it
        self.metric_catalog: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._receipt_ns = 0
        self.traces: OrderedDict[str, TraceSummary] = OrderedDict()
        # The same traces in the same (arrival) order, numbered, and what searches read instead of spans.
        self.trace_order: TraceList[TraceSummary] = TraceList()
        self.search_index = SearchIndex(self.trace_order, self.limits.max_indexed_keys)
        self.span_count = 0
        self.logs: deque[dict[str, Any]] = deque()
        self.logs_by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self._last: OrderedDict[tuple[Any, ...], tuple[int, Any]] = OrderedDict()
        self.errors: OrderedDict[tuple[str, str], ErrorGroup] = OrderedDict()
        self.error_grouper = ErrorGrouper(self.errors, self.limits.max_error_groups, self.evicted)
        self.incidents: deque[dict[str, Any]] = deque(maxlen=self.limits.max_incidents)
        self.journey_step_order: dict[str, list[str]] = defaultdict(list)
        # FastAPI's native telemetry puts only error.type on a failed server span and
        # logs the exception in the span's context: an error group takes its stack
        # trace from that log record, whichever of the two arrives first.
        self._logged_exceptions: OrderedDict[str, tuple[str, str]] = OrderedDict()  # span id -> (message, stack)
        self._groups_without_stack: OrderedDict[str, tuple[str, str]] = OrderedDict()  # span id -> group key

    # --- spans ---------------------------------------------------------------
    def add_spans(self, spans: list[dict[str, Any]]) -> None:
        with self.lock:
            self._receipt_ns = time.time_ns()
            self.received["spans"] += len(spans)
            for span in spans:
                if semconv.MONITOR_OPERATION in span["attributes"]:
                    self.monitored_services.add(span["resource"].get(semconv.SERVICE_NAME, "unknown_service"))
            for span in spans:
                if self._already_received(span):
                    self.received["duplicate_spans"] += 1
                    continue
                self._add_span(span)
            while self.span_count > self.limits.max_spans and self.traces:
                _, old = self.traces.popitem(last=False)
                self.trace_order.popleft()
                self.search_index.evicted()
                self.span_count -= len(old.spans)
                self.evicted["spans"] += len(old.spans)
                self.logs_by_trace.pop(old.trace_id, None)
            self._evict_services()

    def _already_received(self, span: dict[str, Any]) -> bool:
        """True for a span whose trace and span id came before (bounded memory: the last ``max_span_ids``)."""
        if not span["span_id"].strip("0") or not span["trace_id"].strip("0"):
            return False
        key = span["trace_id"] + span["span_id"]
        if key in self._span_ids:
            return True
        self._span_ids[key] = None
        if len(self._span_ids) > self.limits.max_span_ids:
            self._span_ids.popitem(last=False)
        return False

    def _seen(self, service: str, resource: dict[str, Any], t: int) -> ServiceRollups:
        """Note data from a service and its instance: the data's own time, never later than its receipt.

        Returns the service's roll-ups, now the most recently heard from (the last evicted).
        """
        t = min(t, self._receipt_ns or t)
        rollups = self.rollups.get(service)
        if rollups is None:
            rollups = self.rollups[service] = ServiceRollups()
        else:
            self.rollups.move_to_end(service)
        if t > self.services.get(service, 0):
            self.services[service] = t
        instance = str(resource.get(semconv.SERVICE_INSTANCE_ID, ""))
        key = (service, instance)
        self.instance_resources[key] = resource
        if key not in self.instance_first_seen:
            self.instance_first_seen[key] = t
            rollups.instances[instance] = None
        elif t < self.instance_first_seen[key]:
            self.instance_first_seen[key] = t
        if t >= self.instances.get(key, 0):
            self.instances[key] = t
            self.instances.move_to_end(key)
            if len(self.instances) > self.limits.max_instances:
                gone, _ = self.instances.popitem(last=False)
                self._forget_instance(gone)
                self.evicted["instances"] += 1
        return rollups

    def _forget_instance(self, key: tuple[str, str]) -> None:
        """Drop what the store keeps of one instance (evicted): its resource, usage and check states."""
        service, instance = key
        self.instance_first_seen.pop(key, None)
        self.instance_resources.pop(key, None)
        self.instance_usage.pop(key, None)
        self.export_cadence.forget(key)
        rollups = self.rollups.get(service)
        if rollups is not None:
            rollups.instances.pop(instance, None)
            for check in [c for c, states in rollups.health.items() if states.pop(instance, None) and not states]:
                del rollups.health[check]

    def _evict_services(self) -> None:
        """Over ``max_services``: drop the least recently heard from, with everything kept of them.

        Called once per batch: the tables bounded on their own (error groups, the metric list and
        series, counter baselines) are swept once for all the services evicted by it.
        """
        over = len(self.rollups) - self.limits.max_services
        if over <= 0:
            return
        gone: set[str] = set()
        for _ in range(over):
            service, rollups = self.rollups.popitem(last=False)
            gone.add(service)
            self.services.pop(service, None)
            self.monitored_services.discard(service)
            for instance in rollups.instances:
                key = (service, instance)
                self.instances.pop(key, None)
                self.instance_first_seen.pop(key, None)
                self.instance_resources.pop(key, None)
                self.instance_usage.pop(key, None)
                self.export_cadence.forget(key)
        self.evicted["services"] += len(gone)
        tables: tuple[dict[Any, Any], ...] = (self.errors, self.metric_catalog, self.metric_series.series, self._last)
        for table in tables:
            for key in [k for k in table if k[0] in gone]:
                del table[key]
        if any(i["service"] in gone for i in self.incidents):
            kept = [i for i in self.incidents if i["service"] not in gone]
            self.incidents.clear()
            self.incidents.extend(kept)

    def _add_span(self, span: dict[str, Any]) -> None:
        service = span["resource"].get(semconv.SERVICE_NAME, "unknown_service")
        span["service"] = service
        end = span["end_time_unix_nano"]
        rollups = self._seen(service, span["resource"], end)
        attrs = span["attributes"]
        trace = self.traces.get(span["trace_id"])
        if trace is None:
            trace = TraceSummary(span["trace_id"], start_ns=span["start_time_unix_nano"])
            self.traces[span["trace_id"]] = trace
            self.trace_order.append(trace)
        trace.spans.append(span)
        trace.services.add(service)
        trace.start_ns = min(trace.start_ns, span["start_time_unix_nano"])
        trace.end_ns = max(trace.end_ns, end)
        failed = span["status_code"] == _STATUS_ERROR or semconv.ERROR_TYPE in attrs
        if failed and not trace.error:
            self.search_index.add_error(trace.seq)
        trace.error = trace.error or failed
        if not span["parent_span_id"] or not trace.root_name:
            trace.root_name = span["name"]
        self.span_count += 1
        operation = attrs.get(semconv.MONITOR_OPERATION)
        name = span["name"]
        self.search_index.add_span(
            trace, span, str(operation) if operation is not None else http_operation(attrs, name)
        )
        if operation is None and span["kind"] == _SERVER_KIND and service not in self.monitored_services:
            # A standard SERVER span from any SDK: an operation named by its route,
            # failed by a 5xx only (some SDKs mark a 4xx answer as an error too).
            operation = http_operation(attrs, span["name"])
            failed = http_failed(attrs, failed, self.client_errors_fail)
        if operation is not None:
            # A 4xx answer is categorised (validation, auth) but not failed: the
            # same call counts as a success here as in the duration metric.
            category = str(attrs.get(semconv.MONITOR_ERROR_CATEGORY) or "unknown") if failed else None
            key = (str(operation), end // MINUTE_NS)
            hist = rollups.op_spans.get(key)
            if hist is None:
                hist = rollups.op_spans[key] = Histogram()
            bounds = self._span_bounds
            seconds = (end - span["start_time_unix_nano"]) / 1e9
            hist.add(
                bounds,
                {bisect_left(bounds, seconds): 1},
                seconds,
                1,
                category,
                seconds,
                seconds,
                _outcome(attrs, category is not None),
            )
            self._count_call(
                rollups.timelines,
                ("spans", str(operation), span["resource"].get(semconv.SERVICE_INSTANCE_ID, "")),
                span["start_time_unix_nano"],
                end,
            )
        user = attrs.get(semconv.ENDUSER_PSEUDO_ID)
        if user:
            self.error_grouper.note_user(span["trace_id"], str(user))
        if failed:
            self._add_error(service, span, attrs, operation)

    _SPAN_STEP_NS = 250_000_000

    def _count_call(
        self, timelines: dict[tuple[str, str, Any], CallTimeline], key: tuple[str, str, Any], start_ns: int, end_ns: int
    ) -> None:
        timeline = timelines.get(key)
        if timeline is None:
            timeline = timelines[key] = CallTimeline(start_ns)
        elif start_ns < timeline.start_ns and timeline.floor[1] == 0:
            # Spans of one batch end in order but may have started out of order.
            timeline.start_ns, timeline.floor = start_ns, (start_ns, 0.0)
        timeline.add(end_ns, 1, self._SPAN_STEP_NS)

    def _add_error(self, service: str, span: dict[str, Any], attrs: dict[str, Any], operation: Any) -> None:
        # One failure, one group: the trace's root cause (see error_groups).
        key, root = self.error_grouper.add(service, span, attrs, operation)
        group = self.errors.get(key)
        if group is None or not root:
            return  # an occurrence of another span's failure: its stack is that span's
        if not group.stacktrace and span["span_id"]:
            logged = self._logged_exceptions.pop(span["span_id"], None)
            if logged is not None:
                _fill_stack(group, *logged)
            else:
                _remember(self._groups_without_stack, span["span_id"], key)

    # --- logs ----------------------------------------------------------------
    def add_logs(self, logs: list[dict[str, Any]]) -> None:
        with self.lock:
            self._receipt_ns = time.time_ns()
            self.received["logs"] += len(logs)
            for record in logs:
                self._add_log(record)
            while len(self.logs) > self.limits.max_logs:
                old = self.logs.popleft()
                self.log_index.forget(old["seq"])
                self.evicted["logs"] += 1
                same = self.logs_by_trace.get(old["trace_id"])
                if same:
                    same.remove(old)
                    if not same:
                        del self.logs_by_trace[old["trace_id"]]
            self._evict_services()

    def _add_log(self, record: dict[str, Any]) -> None:
        service = record["resource"].get(semconv.SERVICE_NAME, "unknown_service")
        record["service"] = service
        rollups = self._seen(service, record["resource"], record["time_unix_nano"])
        attrs = record["attributes"]
        event = record["event_name"] or attrs.get("event.name")
        if event == semconv.EVENT_JOURNEY_MILESTONE:
            self._add_milestone(rollups, record, attrs)
        elif event == semconv.EVENT_HEALTH_CHANGE:
            self.incidents.append(
                {
                    "service": service,
                    "time_unix_nano": record["time_unix_nano"],
                    "check": attrs.get(semconv.MONITOR_HEALTH_CHECK),
                    "state": attrs.get(semconv.MONITOR_HEALTH_STATE),
                    "previous_state": attrs.get(semconv.MONITOR_HEALTH_PREVIOUS_STATE),
                }
            )
        stacktrace = attrs.get(semconv.EXCEPTION_STACKTRACE)
        if stacktrace and record["span_id"].strip("0"):
            self._add_logged_exception(
                record["span_id"], str(attrs.get(semconv.EXCEPTION_MESSAGE) or ""), str(stacktrace)
            )
        self.log_seq += 1
        record["seq"] = self.log_seq
        self.log_index.add(self.log_seq, record)
        self.logs.append(record)
        if record["trace_id"] and record["trace_id"].strip("0"):
            self.logs_by_trace[record["trace_id"]].append(record)

    def _add_logged_exception(self, span_id: str, message: str, stacktrace: str) -> None:
        key = self._groups_without_stack.pop(span_id, None)
        group = self.errors.get(key) if key is not None else None
        if group is not None:
            if not group.stacktrace:
                _fill_stack(group, message, stacktrace)
        else:
            _remember(self._logged_exceptions, span_id, (message, stacktrace))

    def _add_milestone(self, rollups: ServiceRollups, record: dict[str, Any], attrs: dict[str, Any]) -> None:
        journey = str(attrs.get(semconv.MONITOR_JOURNEY_NAME) or "")
        step = str(attrs.get(semconv.MONITOR_JOURNEY_STEP) or "")
        user = attrs.get(semconv.ENDUSER_PSEUDO_ID)
        if not journey or not step or not user:
            return
        if step not in self.journey_step_order[journey]:
            self.journey_step_order[journey].append(step)
        users = rollups.journeys.get((journey, step))
        if users is None:
            users = rollups.journeys[(journey, step)] = OrderedDict()
        users[str(user)] = record["time_unix_nano"]
        users.move_to_end(str(user))
        if len(users) > self.limits.max_users_per_step:
            users.popitem(last=False)
            self.evicted["journey_users"] += 1

    # --- metrics -------------------------------------------------------------
    def add_metric_points(self, points: list[dict[str, Any]]) -> None:
        with self.lock:
            self._receipt_ns = time.time_ns()
            self.received["metric_points"] += len(points)
            self.export_cadence.note_batch(points)
            for point in points:
                if point["name"] == semconv.METRIC_OPERATION_DURATION:
                    self.monitored_services.add(point["resource"].get(semconv.SERVICE_NAME, "unknown_service"))
            for point in points:
                self._add_point(point)
            while len(self._last) > self.limits.max_series:
                self._last.popitem(last=False)
                self.evicted["series"] += 1
            self._evict_services()

    def _delta(self, key: tuple[Any, ...], point: dict[str, Any], value: Any) -> Any:
        """The increase since the previous point of this series (None: just a baseline)."""
        if point.get("temporality") == _DELTA:
            return value
        start = point["start_time_unix_nano"]
        last = self._last.get(key)
        self._last[key] = (start, value)
        self._last.move_to_end(key)
        if last is None:
            # A series that began before the console started: its total so far
            # belongs to the past, only later increases are counted.
            return value if start >= self.started_ns - MINUTE_NS else None
        last_start, last_value = last
        previous_total = last_value[0] if isinstance(value, tuple) else last_value
        total = value[0] if isinstance(value, tuple) else value
        if start != last_start or total < previous_total:
            return value  # a restarted process counts from zero again
        if isinstance(value, tuple):
            count, s, buckets, bounds = value[:4]
            if bounds != last_value[3]:
                return value
            return (
                count - last_value[0],
                s - last_value[1],
                [a - b for a, b in zip(buckets, last_value[2], strict=True)],
                bounds,
            )
        return value - last_value

    @staticmethod
    def _count_reported(
        rollups: ServiceRollups, instance: Any, operation: str, attrs_key: Any, point: dict[str, Any], delta: Any
    ) -> None:
        """A duration point's calls on the timeline of its series (one per process start)."""
        t = point["time_unix_nano"]
        timelines = rollups.timelines
        if point.get("temporality") == _DELTA:
            series: tuple[Any, ...] = (instance, attrs_key)
            timeline = timelines.get(("metrics", operation, series))
            if timeline is None:
                timeline = timelines[("metrics", operation, series)] = CallTimeline(point["start_time_unix_nano"])
            timeline.add(t, point["count"])
            return
        key = ("metrics", operation, (instance, attrs_key, point["start_time_unix_nano"]))
        timeline = timelines.get(key)
        if timeline is None:
            if delta is None:  # began before the console: known from this point on
                timelines[key] = CallTimeline(t, point["count"])
                return
            # The SDK starts a series at its first call: the rate counts from there.
            timeline = timelines[key] = CallTimeline(point["start_time_unix_nano"])
        timeline.set_total(t, point["count"])

    def _add_point(self, point: dict[str, Any]) -> None:
        name = point["name"]
        resource = point["resource"]
        service = resource.get(semconv.SERVICE_NAME, "unknown_service")
        t = point["time_unix_nano"]
        rollups = self._seen(service, resource, t)
        self._list_metric(service, point)
        self.metric_series.add(service, point, self.started_ns)
        if name in _PROCESS_METRICS:
            self._add_usage(service, str(resource.get(semconv.SERVICE_INSTANCE_ID, "")), name, point)
        if name not in _WATCHED:
            return
        instance = resource.get(semconv.SERVICE_INSTANCE_ID, "")
        attrs = point["attributes"]
        attrs_key = _attrs_key(attrs)
        minute = t // MINUTE_NS
        key = (service, instance, name, attrs_key)
        kind = point["type"]
        if kind == "gauge" and name == semconv.METRIC_HEALTH_STATUS:
            check = str(attrs.get(semconv.MONITOR_HEALTH_CHECK) or "")
            critical = attrs.get(semconv.MONITOR_HEALTH_CRITICAL) in (True, "true")
            value = float(point["value"])
            rollups.health.setdefault(check, {})[str(instance)] = (value, critical, t)
            sample = rollups.health_minutes.get((check, minute))
            if sample is None:
                sample = rollups.health_minutes[(check, minute)] = [0, 0]
            sample[0] += 1
            sample[1] += value > 0
        elif kind == "histogram" and name == semconv.METRIC_OPERATION_DURATION:
            bounds = tuple(point["explicit_bounds"])
            totals = (point["count"], point["sum"], point["bucket_counts"], bounds, point.get("min"), point.get("max"))
            previous = self._last.get(key)
            delta = self._delta(key, point, totals)
            operation = str(attrs.get(semconv.MONITOR_OPERATION, ""))
            self._count_reported(rollups, instance, operation, attrs_key, point, delta)
            if delta is None or delta[0] <= 0:
                return
            if delta is totals or previous is None:  # the series' first point, a restart, or a delta point
                low, high = totals[4], totals[5]
            else:
                low, high = _interval_extremes(delta[2], bounds, previous[1], totals)
            failed = semconv.MONITOR_ERROR_CATEGORY in attrs or semconv.ERROR_TYPE in attrs
            category = str(attrs.get(semconv.MONITOR_ERROR_CATEGORY) or "unknown") if failed else None
            _metrics_histogram(rollups, operation, minute).add(
                delta[3], delta[2], delta[1], delta[0], category, low, high, _outcome(attrs, failed)
            )
        elif kind == "histogram" and name == semconv.METRIC_BUSINESS_AMOUNT:
            # Only the sum (e.g. revenue) and the count (orders) are shown: kept as two counters.
            amount_totals = (point["count"], point["sum"], point["bucket_counts"], tuple(point["explicit_bounds"]))
            delta = self._delta(key, point, amount_totals)
            if delta is not None and delta[0] > 0:
                rollups.counters[(AMOUNT_COUNT, minute, attrs_key)] += delta[0]
                rollups.counters[(AMOUNT_SUM, minute, attrs_key)] += delta[1]
        elif kind == "histogram" and name == semconv.HTTP_SERVER_REQUEST_DURATION:
            if service not in self.monitored_services:
                self._add_http_point(rollups, key, point, attrs, minute)
        elif kind == "sum":
            delta = self._delta(key, point, point["value"])
            if delta:
                rollups.counters[(name, minute, attrs_key)] += delta

    def _add_http_point(
        self, rollups: ServiceRollups, key: tuple[Any, ...], point: dict[str, Any], attrs: dict[str, Any], minute: int
    ) -> None:
        """``http.server.request.duration`` from any SDK: an operation named by its route, 5xx failing."""
        # The stable convention is in seconds; older instrumentations recorded milliseconds.
        scale = 1e-3 if point["unit"] == "ms" else 1.0
        bounds = tuple(b * scale for b in point["explicit_bounds"])
        low_seen, high_seen = point.get("min"), point.get("max")
        totals = (
            point["count"],
            point["sum"] * scale,
            point["bucket_counts"],
            bounds,
            None if low_seen is None else low_seen * scale,
            None if high_seen is None else high_seen * scale,
        )
        previous = self._last.get(key)
        delta = self._delta(key, point, totals)
        operation = http_operation(attrs, "")
        self._count_reported(rollups, key[1], operation, key[3], point, delta)
        if delta is None or delta[0] <= 0:
            return
        if delta is totals or previous is None:
            low, high = totals[4], totals[5]
        else:
            low, high = _interval_extremes(delta[2], bounds, previous[1], totals)
        failed = http_failed(attrs, semconv.ERROR_TYPE in attrs, self.client_errors_fail)
        category = str(attrs.get(semconv.MONITOR_ERROR_CATEGORY) or "unknown") if failed else None
        _metrics_histogram(rollups, operation, minute).add(
            delta[3], delta[2], delta[1], delta[0], category, low, high, _outcome(attrs, failed)
        )

    def _add_usage(self, service: str, instance: str, name: str, point: dict[str, Any]) -> None:
        """An instance's CPU (the rate of its CPU seconds over their last two points) and memory."""
        key = (service, instance)
        usage = self.instance_usage.get(key)
        if usage is None:
            if key not in self.instances:
                return  # an instance the store no longer keeps (bounded like the instances)
            usage = self.instance_usage[key] = InstanceUsage()
        t, value = point["time_unix_nano"], point.get("value")
        if not isinstance(value, (int, float)):
            return
        if name == _MEMORY_USAGE:
            usage.memory_bytes, usage.at = float(value), max(usage.at, t)
            return
        mode = str(dict(point["attributes"]).get("cpu.mode", dict(point["attributes"]).get("type", "")))
        if point.get("temporality") == _DELTA:
            start = point.get("start_time_unix_nano") or 0
            if t > start > 0:
                usage.cpu_rates[mode], usage.at = float(value) / ((t - start) / 1e9), max(usage.at, t)
            return
        last = usage.cpu_seen.get(mode)
        usage.cpu_seen[mode] = (t, float(value))
        if last is not None and t > last[0] and value >= last[1]:
            usage.cpu_rates[mode] = (value - last[1]) / ((t - last[0]) / 1e9)
            usage.at = max(usage.at, t)

    def _list_metric(self, service: str, point: dict[str, Any]) -> None:
        """Keep what the metric list shows of every metric received, ours and the app's own."""
        key = (service, point["name"])
        entry = self.metric_catalog.get(key)
        if entry is None:
            entry = self.metric_catalog[key] = {
                "service": service,
                "name": point["name"],
                "kind": point["type"],
                "unit": point["unit"],
                "series": set(),
                "points": 0,
            }
            if len(self.metric_catalog) > self.limits.max_metrics:
                self.metric_catalog.popitem(last=False)
                self.evicted["metrics"] += 1
        else:
            self.metric_catalog.move_to_end(key)
        entry["kind"], entry["unit"] = point["type"], point["unit"]
        if "temporality" in point:
            entry["temporality"] = "delta" if point["temporality"] == _DELTA else "cumulative"
        if "monotonic" in point:
            entry["monotonic"] = point["monotonic"]
        series: set[int] = entry["series"]
        if len(series) < _MAX_SERIES_COUNTED:
            series.add(hash(_attrs_key(point["attributes"])))
        entry["points"] += 1
        if point["time_unix_nano"] >= entry.get("time_unix_nano", 0):
            entry["time_unix_nano"] = point["time_unix_nano"]
            entry["attributes"] = point["attributes"]
            entry["value"] = (
                point["value"] if "value" in point else {"count": point.get("count"), "sum": point.get("sum")}
            )

    def trim(self, now_ns: int | None = None, services: Iterable[str] | None = None) -> None:
        """Drop per-minute roll-ups older than the longest window.

        ``services``: only those services' roll-ups (a few at a time, so that a large store is
        trimmed without holding the lock long); None: every service and the shared tables.
        """
        now_ns = now_ns or time.time_ns()
        oldest = now_ns // MINUTE_NS - RETENTION_MINUTES
        # Throughput looks one minute back: a series idle for ten is done with.
        idle = now_ns - 10 * MINUTE_NS
        with self.lock:
            for service in list(self.rollups) if services is None else services:
                rollups = self.rollups.get(service)
                if rollups is None:
                    continue
                tables: tuple[dict[Any, Any], ...] = (
                    rollups.op_metrics,
                    rollups.op_spans,
                    rollups.counters,
                    rollups.health_minutes,
                )
                for table in tables:
                    old = [k for k in table if k[1] < oldest]
                    for k in old:
                        del table[k]
                    self.evicted["minutes"] += len(old)
                timelines = rollups.timelines
                for key in [k for k, t in timelines.items() if t.last_ns < idle]:
                    del timelines[key]
            if services is None:
                self.trim_shared(now_ns)

    def trim_shared(self, now_ns: int | None = None) -> None:
        """Drop the minutes older than the longest window from the tables of no one service."""
        oldest = (now_ns or time.time_ns()) // MINUTE_NS - RETENTION_MINUTES
        with self.lock:
            self.metric_series.trim(oldest)
            for group in self.errors.values():
                for minute in [m for m in group.per_minute if m < oldest]:
                    del group.per_minute[minute]


def _metrics_histogram(rollups: ServiceRollups, operation: str, minute: int) -> Histogram:
    """The service's duration-metric roll-up of one operation and minute (made when first needed)."""
    hist = rollups.op_metrics.get((operation, minute))
    if hist is None:
        hist = rollups.op_metrics[(operation, minute)] = Histogram()
        rollups.metrics_minute = max(rollups.metrics_minute, minute)
    return hist


def _interval_extremes(
    buckets: Sequence[int], bounds: tuple[float, ...], previous: tuple[Any, ...], value: tuple[Any, ...]
) -> tuple[float | None, float | None]:
    """The smallest and largest call between two cumulative points.

    A cumulative point's min and max cover the whole series: when one moved, the
    new extreme happened in this interval and is exact; otherwise the interval's
    extreme lies in its outermost non-empty bucket, and within the series' own.
    """
    used = [i for i, c in enumerate(buckets) if c]
    if not used:
        return None, None
    low_now, high_now, low_before, high_before = value[4], value[5], previous[4], previous[5]
    if low_now is not None and (low_before is None or low_now < low_before):
        low: float | None = low_now
    else:
        edge = bounds[used[0] - 1] if 0 < used[0] <= len(bounds) else 0.0
        low = edge if low_now is None else max(edge, low_now)
    if high_now is not None and (high_before is None or high_now > high_before):
        high: float | None = high_now
    else:
        top = bounds[used[-1]] if used[-1] < len(bounds) else None
        high = top if high_now is None else (high_now if top is None else min(top, high_now))
    return low, high


_WATCHED = frozenset(
    {
        semconv.METRIC_OPERATION_DURATION,
        semconv.METRIC_CACHE_REQUESTS,
        semconv.METRIC_FALLBACKS,
        semconv.METRIC_JOURNEY_MILESTONES,
        semconv.METRIC_HEALTH_STATUS,
        semconv.HTTP_SERVER_REQUEST_DURATION,
        semconv.METRIC_BUSINESS_AMOUNT,
        semconv.METRIC_BUSINESS_EVENTS,
        semconv.METRIC_BUSINESS_USERS,
    }
)
# The runtime metrics (otel_monitor.pipeline.runtime_metrics) the console shows per instance.
_CPU_TIME = "process.cpu.time"
_MEMORY_USAGE = "process.memory.usage"
_PROCESS_METRICS = frozenset({_CPU_TIME, _MEMORY_USAGE})


@dataclass
class InstanceUsage:
    """CPU and memory of one instance, from its runtime metrics."""

    memory_bytes: float | None = None
    cpu_seen: dict[str, tuple[int, float]] = field(default_factory=dict)  # mode -> (time, CPU seconds so far)
    cpu_rates: dict[str, float] = field(default_factory=dict)  # mode -> CPU seconds per second
    at: int = 0

    @property
    def cpu_cores(self) -> float | None:
        """Cores busy (1.0: one core's worth), user and system together; None before two points."""
        return sum(self.cpu_rates.values()) if self.cpu_rates else None


# The counters a business amount histogram is kept as (Store.counters names).
AMOUNT_COUNT = semconv.METRIC_BUSINESS_AMOUNT + ".count"
AMOUNT_SUM = semconv.METRIC_BUSINESS_AMOUNT + ".sum"
