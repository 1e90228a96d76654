"""The instruments of otel-monitor and the cardinality guard that bounds them.

The Python metrics SDK keeps every attribute set it is ever given
(opentelemetry-python#2700), so one unbounded attribute value would grow memory
and the backend's series without limit.  Each instrument of ours is wrapped in
:class:`GuardedInstrument`: it keeps at most ``limit`` distinct attribute sets,
and every further one is recorded on the single overflow series
``{otel.metric.overflow: true}``, as the metrics specification prescribes.

:func:`create_instruments` builds the four contract instruments on a meter
provider; :func:`bind` makes them the ones the public helpers
(``cache_lookup``, ``served_by``, ``journey_milestone``) record on.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from opentelemetry import metrics as metrics_api

from . import semconv
from .slo import DEFAULT_BUCKETS

DEFAULT_CARDINALITY_LIMIT = 2000
OVERFLOW_ATTRIBUTES: Mapping[str, Any] = {semconv.OTEL_METRIC_OVERFLOW: True}
METER_NAME = "otel_monitor"


class GuardedInstrument:
    """A counter or histogram that keeps at most ``limit`` attribute sets.

    ``key`` lets hot callers pass a precomputed hashable identity of the
    attribute set (e.g. a tuple they already have) to skip building one.
    One slot of the limit is kept for the overflow series itself.
    """

    def __init__(self, instrument: Any, limit: int = DEFAULT_CARDINALITY_LIMIT) -> None:
        self._instrument = instrument
        self._limit = max(1, limit - 1)
        self._seen: set[Any] = set()
        self._lock = threading.Lock()
        # add() on counters, record() on histograms: pick once, not per point.
        self._emit = getattr(instrument, "record", None) or instrument.add

    @property
    def series(self) -> int:
        """How many distinct attribute sets this instrument has kept."""
        return len(self._seen)

    def _admitted(self, attributes: Mapping[str, Any] | None, key: Any) -> Mapping[str, Any] | None:
        if key is None:
            key = frozenset(attributes.items()) if attributes else ()
        if key in self._seen:
            return attributes
        with self._lock:
            if key in self._seen:
                return attributes
            if len(self._seen) >= self._limit:
                return OVERFLOW_ATTRIBUTES
            self._seen.add(key)
        return attributes

    def add(self, amount: float, attributes: Mapping[str, Any] | None = None, key: Any = None) -> None:
        self._emit(amount, self._admitted(attributes, key))

    record = add


@dataclass
class Instruments:
    """The contract's instruments, each behind the cardinality guard."""

    operation_duration: GuardedInstrument
    cache_requests: GuardedInstrument
    fallbacks: GuardedInstrument
    journey_milestones: GuardedInstrument


def create_instruments(
    meter_provider: Any = None,
    buckets: Sequence[float] = DEFAULT_BUCKETS,
    cardinality_limit: int = DEFAULT_CARDINALITY_LIMIT,
) -> Instruments:
    """Create our instruments on ``meter_provider`` (the global one when None).

    The histogram's boundaries are given as the advisory parameter, because
    the SDK configurator has no views argument.
    """
    meter = metrics_api.get_meter(METER_NAME, meter_provider=meter_provider)
    duration = meter.create_histogram(
        semconv.METRIC_OPERATION_DURATION, unit="s",
        description="Duration of each operation; failures carry monitor.error.category and error.type.",
        explicit_bucket_boundaries_advisory=list(buckets))
    cache = meter.create_counter(
        semconv.METRIC_CACHE_REQUESTS, unit="{request}",
        description="Cache lookups by cache name and hit or miss.")
    fallbacks = meter.create_counter(
        semconv.METRIC_FALLBACKS, unit="{request}",
        description="Requests served by a layer other than the primary one.")
    milestones = meter.create_counter(
        semconv.METRIC_JOURNEY_MILESTONES, unit="{milestone}",
        description="User journey milestones reached, by journey and step.")
    return Instruments(
        operation_duration=GuardedInstrument(duration, cardinality_limit),
        cache_requests=GuardedInstrument(cache, cardinality_limit),
        fallbacks=GuardedInstrument(fallbacks, cardinality_limit),
        journey_milestones=GuardedInstrument(milestones, cardinality_limit),
    )


_bound: Instruments | None = None
_bound_lock = threading.Lock()


def after_fork() -> None:
    """Fresh locks in a forked child: a parent thread may have held one at the instant of fork."""
    global _bound_lock
    _bound_lock = threading.Lock()
    if _bound is not None:
        for instrument in (_bound.operation_duration, _bound.cache_requests, _bound.fallbacks,
                           _bound.journey_milestones):
            instrument._lock = threading.Lock()


def bind(instruments: Instruments) -> None:
    """Make ``instruments`` the ones the public helpers record on."""
    global _bound
    _bound = instruments


def current() -> Instruments:
    """The bound instruments; before configuration, ones on the global meter
    provider (a proxy that starts recording once an SDK provider is set)."""
    global _bound
    if _bound is None:
        with _bound_lock:
            if _bound is None:
                _bound = create_instruments()
    return _bound


# --- helpers the app calls ------------------------------------------------------------
_operation_namer: Any = None


def bind_operation_namer(namer: Any) -> None:
    """``namer(span) -> str | None``: how served_by() names the current span's operation."""
    global _operation_namer
    _operation_namer = namer


_cache_labels: dict[tuple[str, bool], dict[str, Any]] = {}
_fallback_labels: dict[tuple[str, str], dict[str, str]] = {}


def cache_lookup(cache: str, hit: bool) -> None:
    """Count a lookup in ``cache`` (``monitor.cache.requests``) and mark the current span."""
    from opentelemetry import trace

    from .guard import guarded

    with guarded("cache_lookup"):
        key = (cache, bool(hit))
        labels = _cache_labels.get(key)
        if labels is None:
            labels = {semconv.MONITOR_CACHE_NAME: cache, semconv.MONITOR_CACHE_HIT: bool(hit)}
            if len(_cache_labels) < 10_000:
                _cache_labels[key] = labels
        current().cache_requests.add(1, labels, key=key)
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes(labels)


def served_by(layer: str, operation: str | None = None) -> None:
    """Record which layer served the request; a non-primary layer counts a ``monitor.fallbacks``."""
    from opentelemetry import trace

    from .guard import guarded

    with guarded("served_by"):
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(semconv.MONITOR_SERVICE_LAYER, layer)
            if operation is None:
                namer = _operation_namer
                attributes = getattr(span, "attributes", None) or {}
                operation = namer(span) if namer is not None else (
                    attributes.get(semconv.MONITOR_OPERATION) or _fallback_operation(attributes))
        if layer == "primary":
            return
        key = (operation or "unknown", layer)
        labels = _fallback_labels.get(key)
        if labels is None:
            labels = {semconv.MONITOR_OPERATION: key[0], semconv.MONITOR_SERVICE_LAYER: layer}
            if len(_fallback_labels) < 10_000:
                _fallback_labels[key] = labels
        current().fallbacks.add(1, labels, key=key)


def _fallback_operation(attributes: Mapping[str, Any]) -> str | None:
    """The ``METHOD route`` name a server span gets when no rule names it."""
    route = attributes.get(semconv.HTTP_ROUTE)
    method = attributes.get(semconv.HTTP_REQUEST_METHOD)
    if route:
        return f"{method or 'HTTP'} {route}"
    return str(method) if method else None
