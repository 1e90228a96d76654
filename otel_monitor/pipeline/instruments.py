"""The instruments of otel-monitor and the cardinality guard that bounds them.

The Python metrics SDK keeps every attribute set it is ever given
(opentelemetry-python#2700), so one unbounded attribute value would grow memory
and the backend's series without limit.  Each instrument of ours is wrapped in
:class:`GuardedInstrument`: it keeps at most ``limit`` distinct attribute sets,
and every further one is recorded on the single overflow series
``{otel.metric.overflow: true}``, as the metrics specification prescribes.

:func:`create_instruments` builds the four contract instruments on a meter
provider; the ones in the runtime (:mod:`otel_monitor.runtime`) are those the
public helpers (``cache_lookup``, ``served_by``, ``journey_milestone``) record on.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from opentelemetry import metrics as metrics_api

from otel_monitor import runtime, semconv
from otel_monitor.semantics.slo import DEFAULT_BUCKETS

if TYPE_CHECKING:
    from otel_monitor.semantics.journeys import JourneyRecorder

DEFAULT_CARDINALITY_LIMIT = 2000
OVERFLOW_ATTRIBUTES: Mapping[str, Any] = {semconv.OTEL_METRIC_OVERFLOW: True}
METER_NAME = "otel_monitor"


class DirectPath(Protocol):
    """What :class:`GuardedInstrument` asks of a direct path (``otel_monitor.fast.histograms``)."""

    enabled: bool

    def record(self, amount: float, key: Any) -> bool: ...

    def learn(self, attributes: Mapping[str, Any] | None, key: Any) -> None: ...

    def known_sets(self) -> int: ...


def _key_of(attributes: Mapping[str, Any] | None) -> Any:
    """A hashable identity of an attribute set that, like the SDK, tells 1, 1.0 and True apart.

    A list value (attribute values may be sequences) is taken as the tuple of its items.
    """
    if not attributes:
        return ()
    return frozenset((k, v.__class__, tuple(v) if v.__class__ is list else v) for k, v in attributes.items())


class GuardedInstrument:
    """A counter or histogram that keeps at most ``limit`` attribute sets.

    ``key`` lets hot callers pass a precomputed hashable identity of the
    attribute set (e.g. a tuple they already have) to skip building one; it
    must identify the set exactly (value types included), since points with
    one key land in one series.  One slot of the limit is kept for the
    overflow series itself.
    """

    def __init__(
        self,
        instrument: Any,
        limit: int = DEFAULT_CARDINALITY_LIMIT,
        direct: Callable[[Any, int], DirectPath | None] | None = None,
    ) -> None:
        self._instrument = instrument
        self._limit = max(1, limit - 1)
        self._seen: set[Any] = set()
        self._lock = threading.Lock()
        # add() on counters, record() on histograms: pick once, not per point.
        self._emit = getattr(instrument, "record", None) or instrument.add
        # ``direct``: the launcher's direct path (otel_monitor.fast.histograms, OTEL_MONITOR_DIRECT_HISTOGRAMS);
        # without it every point goes through the SDK's own record.
        self._direct = direct(instrument, limit) if direct is not None else None

    def after_fork(self) -> None:
        """A fresh lock in a forked child: a parent thread may have held this one at the instant of fork."""
        self._lock = threading.Lock()

    @property
    def direct_sets(self) -> int:
        """Attribute sets recorded on the direct path (0 when it is off or fell back to the SDK's own)."""
        direct = self._direct
        return direct.known_sets() if direct is not None and direct.enabled else 0

    @property
    def series(self) -> int:
        """How many distinct attribute sets this instrument has kept."""
        return len(self._seen)

    def _admitted(self, attributes: Mapping[str, Any] | None, key: Any) -> Mapping[str, Any] | None:
        if key is None:
            key = _key_of(attributes)
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
        direct = self._direct
        if direct is None or not direct.enabled:
            self._emit(amount, self._admitted(attributes, key))
            return
        if key is None:
            key = _key_of(attributes)
        if direct.record(amount, key):
            return  # only admitted attribute sets are ever learned
        admitted = self._admitted(attributes, key)
        self._emit(amount, admitted)
        if admitted is attributes:  # an overflowed set keeps the SDK's path: it is rare by design
            direct.learn(attributes, key)

    record = add


@dataclass
class Instruments:
    """The contract's instruments, each behind the cardinality guard."""

    operation_duration: GuardedInstrument
    cache_requests: GuardedInstrument
    fallbacks: GuardedInstrument
    journey_milestones: GuardedInstrument
    business_amounts: GuardedInstrument
    business_events: GuardedInstrument
    business_users: GuardedInstrument


# Money amounts in currency units: 1-2-5 steps from 1 to 10 000 (an order of 0.50 lands in the first).
AMOUNT_BUCKETS: tuple[float, ...] = tuple(m * 10.0**e for e in range(5) for m in (1, 2, 5) if m * 10**e <= 10_000)


def create_instruments(
    meter_provider: Any = None,
    buckets: Sequence[float] = DEFAULT_BUCKETS,
    cardinality_limit: int = DEFAULT_CARDINALITY_LIMIT,
    direct: Callable[[Any, int], DirectPath | None] | None = None,
) -> Instruments:
    """Create our instruments on ``meter_provider`` (the global one when None).

    The histogram's boundaries are given as the advisory parameter, because
    the SDK configurator has no views argument.  ``direct``: the histogram's
    direct path, passed in by the launcher (``otel_monitor.fast.histograms``,
    ``OTEL_MONITOR_DIRECT_HISTOGRAMS``).
    """
    meter = metrics_api.get_meter(METER_NAME, meter_provider=meter_provider)
    duration = meter.create_histogram(
        semconv.METRIC_OPERATION_DURATION,
        unit="s",
        description="Duration of each operation; failures carry monitor.error.category and error.type.",
        explicit_bucket_boundaries_advisory=list(buckets),
    )
    cache = meter.create_counter(
        semconv.METRIC_CACHE_REQUESTS, unit="{request}", description="Cache lookups by cache name and hit or miss."
    )
    fallbacks = meter.create_counter(
        semconv.METRIC_FALLBACKS, unit="{request}", description="Requests served by a layer other than the primary one."
    )
    milestones = meter.create_counter(
        semconv.METRIC_JOURNEY_MILESTONES,
        unit="{milestone}",
        description="User journey milestones reached, by journey and step.",
    )
    amounts = meter.create_histogram(
        semconv.METRIC_BUSINESS_AMOUNT,
        unit="{amount}",
        description="Business amounts (revenue, refunds...) by KPI and currency: sum, count and distribution.",
        explicit_bucket_boundaries_advisory=list(AMOUNT_BUCKETS),
    )
    events = meter.create_counter(
        semconv.METRIC_BUSINESS_EVENTS, unit="{event}", description="Business events counted, by KPI."
    )
    users = meter.create_counter(
        semconv.METRIC_BUSINESS_USERS,
        unit="{user}",
        description="Distinct users per UTC day, by KPI: one the first time a user is seen on a day.",
    )
    return Instruments(
        operation_duration=GuardedInstrument(duration, cardinality_limit, direct),
        cache_requests=GuardedInstrument(cache, cardinality_limit),
        fallbacks=GuardedInstrument(fallbacks, cardinality_limit),
        journey_milestones=GuardedInstrument(milestones, cardinality_limit),
        business_amounts=GuardedInstrument(amounts, cardinality_limit, direct),
        business_events=GuardedInstrument(events, cardinality_limit),
        business_users=GuardedInstrument(users, cardinality_limit),
    )


def after_fork() -> None:
    """Fresh locks in a forked child: a parent thread may have held one at the instant of fork."""
    bound = runtime.current().instruments
    if bound is not None:
        for instrument in (
            bound.operation_duration,
            bound.cache_requests,
            bound.fallbacks,
            bound.journey_milestones,
            bound.business_amounts,
            bound.business_events,
            bound.business_users,
        ):
            instrument.after_fork()


def instruments_in_use() -> Instruments:
    """The runtime's instruments; before configuration, ones on the global meter
    provider (a proxy that starts recording once an SDK provider is set)."""
    state = runtime.current()
    bound = state.instruments
    if bound is None:
        with state.lock:
            bound = state.instruments
            if bound is None:
                bound = state.instruments = create_instruments()
    return bound


# --- helpers the app calls ------------------------------------------------------------
_cache_labels: dict[tuple[str, bool, str | None], dict[str, Any]] = {}
_fallback_labels: dict[tuple[str, str], dict[str, str]] = {}


def cache_lookup(cache: str, hit: bool) -> None:
    """Count a lookup in ``cache`` (``monitor.cache.requests``) and mark the current span.

    The count carries the operation of the current span, when it has one, so a
    hit rate is shown for the operations that use the cache and no others.
    """
    from opentelemetry import trace

    from otel_monitor.guard import guarded

    with guarded("cache_lookup"):
        span = trace.get_current_span()
        recording = span.is_recording()
        operation = _current_operation(span) if recording else None
        key = (cache, bool(hit), operation)
        labels = _cache_labels.get(key)
        if labels is None:
            labels = {semconv.MONITOR_CACHE_NAME: cache, semconv.MONITOR_CACHE_HIT: bool(hit)}
            if operation:
                labels[semconv.MONITOR_OPERATION] = operation
            if len(_cache_labels) < 10_000:
                _cache_labels[key] = labels
        instruments_in_use().cache_requests.add(1, labels, key=key)
        if recording:
            span.set_attributes({semconv.MONITOR_CACHE_NAME: cache, semconv.MONITOR_CACHE_HIT: bool(hit)})


def _current_operation(span: Any) -> str | None:
    """The operation ``span`` belongs to: its monitor.operation, the rules' name, or METHOD route."""
    namer = runtime.current().operation_namer
    attributes = getattr(span, "attributes", None) or {}
    named = attributes.get(semconv.MONITOR_OPERATION) or (namer(span) if namer is not None else None)
    return str(named) if named else _fallback_operation(attributes)


def served_by(layer: str, operation: str | None = None) -> None:
    """Record which layer served the request; a non-primary layer counts a ``monitor.fallbacks``."""
    from opentelemetry import trace

    from otel_monitor.guard import guarded

    with guarded("served_by"):
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attribute(semconv.MONITOR_SERVICE_LAYER, layer)
            if operation is None:
                namer = runtime.current().operation_namer
                attributes = getattr(span, "attributes", None) or {}
                operation = (
                    namer(span)
                    if namer is not None
                    else (attributes.get(semconv.MONITOR_OPERATION) or _fallback_operation(attributes))
                )
        if layer == "primary":
            return
        key = (operation or "unknown", layer)
        labels = _fallback_labels.get(key)
        if labels is None:
            labels = {semconv.MONITOR_OPERATION: key[0], semconv.MONITOR_SERVICE_LAYER: layer}
            if len(_fallback_labels) < 10_000:
                _fallback_labels[key] = labels
        instruments_in_use().fallbacks.add(1, labels, key=key)


def _fallback_operation(attributes: Mapping[str, Any]) -> str | None:
    """The ``METHOD route`` name a server span gets when no rule names it."""
    route = attributes.get(semconv.HTTP_ROUTE)
    method = attributes.get(semconv.HTTP_REQUEST_METHOD)
    if route:
        return f"{method or 'HTTP'} {route}"
    return str(method) if method else None


# The journey recorder lives here, beside the counter it records on: semantics.journeys holds
# the rules (funnels, pseudonyms, the store) and imports nothing of the pipeline.
def journey_recorder() -> JourneyRecorder:
    """The runtime's recorder; before configuration one on the global providers."""
    state = runtime.current()
    recorder = state.journey_recorder
    if recorder is None:
        import os

        from opentelemetry._logs import get_logger

        from otel_monitor.semantics.journeys import JourneyRecorder

        counter = instruments_in_use().journey_milestones  # before the lock: creating them takes it
        with state.lock:
            recorder = state.journey_recorder
            if recorder is None:
                recorder = state.journey_recorder = JourneyRecorder(
                    get_logger("otel_monitor"), counter, os.environ.get("OTEL_MONITOR_USER_ID_KEY") or None
                )
    return recorder


def journey_milestone(
    step: str, *, user_id: str | int | None = None, journey: str | None = None, **attributes: Any
) -> bool | None:
    """Record that a user reached ``step``: a log-based event plus ``monitor.journey.milestones``.

    Returns whether it was the user's first time when a journey store is
    configured, else None.  Never raises into the app.
    """
    from otel_monitor.guard import guarded

    with guarded("journey_milestone"):
        return journey_recorder().milestone(step, user_id=user_id, journey=journey, **attributes)
    return None
