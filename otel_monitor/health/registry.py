"""Health checks: a registry of dependency checks run in the background, as telemetry.

A :class:`HealthRegistry` holds :class:`HealthCheck` s (built-ins live in
:mod:`otel_monitor.health.checks`, user checks are plain sync or async
callables).  A daemon thread with its own asyncio loop runs every check each
``OTEL_MONITOR_HEALTH_INTERVAL`` seconds, each bounded by its timeout; the
results are cached, so the endpoints of :mod:`otel_monitor.health.endpoints`
answer at once even while a dependency hangs, and nothing runs on the
request path or on the app's event loop.

Each check reports:

- ``monitor.health.status`` (observable gauge; 1 up, 0.5 degraded, 0 down)
  with ``monitor.health.check`` and ``monitor.health.critical``;
- ``monitor.health.check.duration`` (histogram, seconds) per run;
- a ``monitor.health.change`` log-based event when its state changes, so
  incidents (down ... up) and uptime can be computed downstream.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import logging
import os
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from otel_monitor import runtime, semconv
from otel_monitor.guard import guarded

# A logger of its own so a log bridge can tell these lines from the change events.
_log = logging.getLogger("otel_monitor.health")

UP, DEGRADED, DOWN = semconv.HEALTH_STATES
PENDING = "pending"  # no result yet; only ever shown by the endpoints, never exported

CheckFunction = Callable[[], Any] | Callable[[], Awaitable[Any]]

# Seconds; health checks are fast or time out within a few seconds.
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass(frozen=True)
class CheckOutcome:
    """What a check function may return to say more than up/down: a state and a detail."""

    state: str
    detail: str = ""

    def __post_init__(self) -> None:
        if self.state not in semconv.HEALTH_STATES:
            raise ValueError(f"health state must be one of {', '.join(semconv.HEALTH_STATES)}, got {self.state!r}")


@dataclass(frozen=True)
class HealthCheck:
    """One dependency check.

    ``function`` is called with no arguments, sync or async.  It signals
    *up* by returning ``None`` or ``True``, *down* by returning ``False`` or
    raising, and may return a state name or a :class:`CheckOutcome`.  A run
    slower than ``degraded_after`` seconds is *degraded*; one slower than
    ``timeout`` is *down*.  Only a *critical* check being down makes the
    service unhealthy (HTTP 503).
    """

    name: str
    function: CheckFunction
    timeout: float = 2.0
    degraded_after: float | None = None
    critical: bool = True
    kind: str = "custom"

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("a health check needs a name")
        if not callable(self.function):
            raise TypeError(
                f"health check {self.name!r}: function must be callable, got {type(self.function).__name__}"
            )
        if not self.timeout > 0:
            raise ValueError(f"health check {self.name!r}: timeout must be positive, got {self.timeout!r}")
        if self.degraded_after is not None and not 0 <= self.degraded_after:
            raise ValueError(f"health check {self.name!r}: degraded_after must be >= 0, got {self.degraded_after!r}")

    @property
    def is_async(self) -> bool:
        function = self.function
        return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(getattr(function, "__call__", None))  # noqa: B004 - an object whose __call__ is async


@dataclass(frozen=True)
class CheckStatus:
    """The cached result of a check's latest run."""

    name: str
    state: str
    critical: bool
    latency: float | None = None  # seconds; None before the first run
    detail: str = ""
    checked_at: float | None = None  # unix seconds
    changed_at: float | None = None  # unix seconds of the last state change

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "state": self.state,
            "critical": self.critical,
            "latency_ms": None if self.latency is None else round(self.latency * 1000, 3),
            "detail": self.detail,
            "checked_at": _iso(self.checked_at),
            "last_change": _iso(self.changed_at),
        }


def _iso(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(timestamp)) + f".{int(timestamp % 1 * 1000):03d}Z"


@dataclass(frozen=True)
class HealthReport:
    """Every check's cached status and the verdict for the service."""

    checks: tuple[CheckStatus, ...] = field(default_factory=tuple)

    @property
    def status(self) -> str:
        """``healthy``, ``degraded``, ``unhealthy`` (a critical check down) or ``starting``."""
        if any(c.critical and c.state == DOWN for c in self.checks):
            return "unhealthy"
        if any(c.critical and c.state == PENDING for c in self.checks):
            return "starting"
        if any(c.state in (DOWN, DEGRADED) for c in self.checks):
            return "degraded"
        return "healthy"

    @property
    def http_status(self) -> int:
        """200 when healthy or degraded; 503 when a critical check is down or not yet known."""
        return 503 if self.status in ("unhealthy", "starting") else 200

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "checks": [c.to_dict() for c in self.checks]}


def _interpret(value: Any) -> CheckOutcome:
    """Turn what a check function returned into a state."""
    if value is None or value is True:
        return CheckOutcome(UP)
    if value is False:
        return CheckOutcome(DOWN, "check returned False")
    if isinstance(value, CheckOutcome):
        return value
    if isinstance(value, str) and value in semconv.HEALTH_STATES:
        return CheckOutcome(value)
    raise TypeError(f"a health check must return None, a bool, a state name or CheckOutcome, not {value!r}")


def _describe(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {message}"[:300] if message else type(exc).__name__


def _run_sync(check: HealthCheck) -> tuple[Any, float]:
    """Run a sync check with our own instrumentation suppressed (no spans for SELECT 1)."""
    from opentelemetry.instrumentation.utils import suppress_instrumentation

    with suppress_instrumentation():
        started = time.perf_counter()
        value = check.function()
        return value, time.perf_counter() - started


def _in_daemon_thread(check: HealthCheck) -> concurrent.futures.Future[tuple[Any, float]]:
    # A daemon thread per run rather than a pool: a hung dependency must neither
    # starve the other checks of workers nor block interpreter exit.
    future: concurrent.futures.Future[tuple[Any, float]] = concurrent.futures.Future()

    def run() -> None:
        if not future.set_running_or_notify_cancel():
            return
        try:
            future.set_result(_run_sync(check))
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting runner
            future.set_exception(exc)

    threading.Thread(target=run, name=f"otel-monitor-health-{check.name}", daemon=True).start()
    return future


class HealthRegistry:
    """Checks, their background runner, their cached results and their telemetry.

    ``interval`` defaults to ``OTEL_MONITOR_HEALTH_INTERVAL``; providers
    default to the global ones at :meth:`start`.
    """

    def __init__(
        self,
        checks: Iterable[HealthCheck] = (),
        *,
        interval: float | None = None,
        meter_provider: Any = None,
        logger_provider: Any = None,
    ) -> None:
        if interval is None:
            from otel_monitor.config.settings import resolve

            interval = float(resolve().health_interval)
        if not interval > 0:
            raise ValueError(f"health check interval must be positive, got {interval!r}")
        self.interval = interval
        self._meter_provider = meter_provider
        self._logger_provider = logger_provider
        self._checks: dict[str, HealthCheck] = {}
        self._status: dict[str, CheckStatus] = {}
        self._inflight: dict[str, concurrent.futures.Future[tuple[Any, float]]] = {}
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._pid = os.getpid()
        self._instruments: tuple[Any, Any] | None = None
        self._logger: Any = None
        for check in checks:
            self.add(check)

    # --- the checks ---------------------------------------------------------------

    def add(
        self,
        check: HealthCheck | CheckFunction,
        *,
        name: str | None = None,
        timeout: float = 2.0,
        degraded_after: float | None = None,
        critical: bool = True,
    ) -> HealthCheck:
        """Register a :class:`HealthCheck`, or a sync/async callable with these options."""
        if not isinstance(check, HealthCheck):
            check = HealthCheck(name or str(getattr(check, "__name__", "")), check, timeout, degraded_after, critical)
        with self._lock:
            if check.name in self._checks:
                raise ValueError(f"a health check named {check.name!r} is already registered")
            self._checks[check.name] = check
            self._status[check.name] = CheckStatus(check.name, PENDING, check.critical)
        return check

    def check(self, name: str | None = None, **options: Any) -> Callable[[CheckFunction], CheckFunction]:
        """Decorator form of :meth:`add`: ``@registry.check(critical=False)``."""

        def register(function: CheckFunction) -> CheckFunction:
            self.add(function, name=name, **options)
            return function

        return register

    @property
    def checks(self) -> tuple[HealthCheck, ...]:
        with self._lock:
            return tuple(self._checks.values())

    # --- results ----------------------------------------------------------------------

    def report(self) -> HealthReport:
        """The cached results; never runs a check, never blocks on one."""
        with self._lock:
            return HealthReport(tuple(self._status.values()))

    def wait_for(self, predicate: Callable[[HealthReport], bool], timeout: float = 10.0) -> bool:
        """Wait until ``predicate(report)`` holds; return whether it did.

        The predicate runs without our lock held, so it may call back into the registry.
        """
        deadline = time.monotonic() + timeout
        while not predicate(self.report()):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            with self._changed:
                self._changed.wait(min(remaining, 0.1))
        return True

    # --- the runner ----------------------------------------------------------------

    def start(self) -> None:
        """Start the background runner (idempotent; restarts in a forked child)."""
        with self._lock:
            if self._pid != os.getpid():  # threads do not survive fork(): start afresh
                self._pid, self._thread, self._inflight = os.getpid(), None, {}
            if self._thread is not None and self._thread.is_alive():
                return
            self._bind_telemetry()
            ready = threading.Event()
            self._thread = threading.Thread(target=self._main, args=(ready,), name="otel-monitor-health", daemon=True)
            self._thread.start()
        ready.wait(5)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the runner; a check still hanging is abandoned on its daemon thread."""
        with self._lock:
            thread, loop, stop = self._thread, self._loop, self._stop
            self._thread = None
        if thread is None or loop is None or stop is None:
            return
        try:
            loop.call_soon_threadsafe(stop.set)
        except RuntimeError:  # loop already closed
            pass
        thread.join(timeout)

    def run_once(self, timeout: float | None = None) -> HealthReport:
        """Run every check now and wait for the results (for tests and the CLI)."""
        loop = self._loop
        if loop is not None and self._thread is not None and self._thread.is_alive():
            limit = timeout if timeout is not None else max((c.timeout for c in self.checks), default=1.0) + 5
            asyncio.run_coroutine_threadsafe(self._round(), loop).result(limit)
        else:
            self._bind_telemetry()
            asyncio.run(self._round())
        return self.report()

    def _main(self, ready: threading.Event) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve(loop, ready))
        finally:
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop, ready: threading.Event) -> None:
        stop = asyncio.Event()
        self._loop, self._stop = loop, stop
        ready.set()
        while not stop.is_set():
            with guarded("health runner"):
                await self._round()
            try:
                await asyncio.wait_for(stop.wait(), self.interval)
            except TimeoutError:
                pass

    async def _round(self) -> None:
        checks = self.checks
        if checks:
            await asyncio.gather(*(self._run(check) for check in checks))

    async def _run(self, check: HealthCheck) -> None:
        started = time.perf_counter()
        try:
            outcome, latency = await self._call(check)
        except TimeoutError:
            outcome, latency = CheckOutcome(DOWN, f"timed out after {check.timeout:g}s"), time.perf_counter() - started
        except Exception as exc:  # noqa: BLE001 - a failing dependency is a result, not our error
            outcome, latency = CheckOutcome(DOWN, _describe(exc)), time.perf_counter() - started
        if outcome.state == UP and check.degraded_after is not None and latency > check.degraded_after:
            outcome = CheckOutcome(DEGRADED, f"slow: {latency * 1000:.0f} ms > {check.degraded_after * 1000:.0f} ms")
        with guarded("health result"):
            self._record(check, outcome, latency)

    async def _call(self, check: HealthCheck) -> tuple[CheckOutcome, float]:
        if check.is_async:
            from opentelemetry.instrumentation.utils import suppress_instrumentation

            async def timed() -> tuple[Any, float]:
                with suppress_instrumentation():
                    started = time.perf_counter()
                    value = await check.function()
                    return value, time.perf_counter() - started

            value, latency = await asyncio.wait_for(timed(), check.timeout)
            return _interpret(value), latency
        budget = check.timeout
        previous = self._inflight.get(check.name)
        if previous is not None and not previous.done():
            # An earlier run is still stuck: never pile up threads on a hung dependency,
            # but give it this run's time to finish (it may have just been released).
            started = time.perf_counter()
            try:
                await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(previous)), budget)
            except Exception:  # noqa: BLE001 - timed out, or the old run failed: only whether it ended matters
                pass
            budget -= time.perf_counter() - started
            if not previous.done() or budget <= 0:
                hanging = CheckOutcome(DOWN, f"still hanging since an earlier run (timeout {check.timeout:g}s)")
                return hanging, check.timeout
        future = _in_daemon_thread(check)
        self._inflight[check.name] = future
        value, latency = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), budget)
        return _interpret(value), latency

    # --- telemetry ---------------------------------------------------------------------

    def _bind_telemetry(self) -> None:
        if self._instruments is not None:
            return
        from opentelemetry import metrics
        from opentelemetry._logs import get_logger

        shared = _instruments_for(self._meter_provider or metrics.get_meter_provider())
        shared.registries.add(self)
        self._instruments = (shared.gauge, shared.histogram)
        self._logger = get_logger("otel_monitor.health", logger_provider=self._logger_provider)

    def observations(self) -> list[Any]:
        """The status gauge's observations: one per check of this registry, from its last result."""
        from opentelemetry.metrics import Observation

        observations = []
        with guarded("health status gauge"):
            for status in self.report().checks:
                if status.state in semconv.HEALTH_STATUS_VALUE:
                    observations.append(
                        Observation(
                            semconv.HEALTH_STATUS_VALUE[status.state],
                            {
                                semconv.MONITOR_HEALTH_CHECK: status.name,
                                semconv.MONITOR_HEALTH_CRITICAL: status.critical,
                            },
                        )
                    )
        return observations

    def _record(self, check: HealthCheck, outcome: CheckOutcome, latency: float) -> None:
        now = time.time()
        with self._changed:
            if self._checks.get(check.name) is not check:
                return  # removed or replaced meanwhile
            previous = self._status[check.name]
            changed = previous.state != outcome.state
            self._status[check.name] = CheckStatus(
                check.name,
                outcome.state,
                check.critical,
                latency,
                outcome.detail,
                now,
                now if changed else previous.changed_at,
            )
            self._changed.notify_all()
        if self._instruments is not None:
            self._instruments[1].record(
                latency, {semconv.MONITOR_HEALTH_CHECK: check.name, semconv.MONITOR_HEALTH_CRITICAL: check.critical}
            )
        # The first result opens an incident only when it is not up; later, every change is an event.
        if changed and not (previous.state == PENDING and outcome.state == UP):
            self._emit_change(check, outcome, previous.state)

    def _emit_change(self, check: HealthCheck, outcome: CheckOutcome, previous: str) -> None:
        from opentelemetry._logs import SeverityNumber

        if outcome.state == UP:
            severity, text = SeverityNumber.INFO, "INFO"
        elif outcome.state == DOWN and check.critical:
            severity, text = SeverityNumber.ERROR, "ERROR"
        else:
            severity, text = SeverityNumber.WARN, "WARN"
        attributes: dict[str, Any] = {
            semconv.MONITOR_HEALTH_CHECK: check.name,
            semconv.MONITOR_HEALTH_STATE: outcome.state,
            semconv.MONITOR_HEALTH_CRITICAL: check.critical,
        }
        if previous != PENDING:
            attributes[semconv.MONITOR_HEALTH_PREVIOUS_STATE] = previous
        body = f"health check {check.name} is {outcome.state}" + (f" (was {previous})" if previous != PENDING else "")
        if outcome.detail:
            body += f": {outcome.detail}"
        _log.log(logging.INFO if outcome.state == UP else logging.WARNING, "otel-monitor: %s", body)
        if self._logger is not None:
            self._logger.emit(
                event_name=semconv.EVENT_HEALTH_CHANGE,
                severity_number=severity,
                severity_text=text,
                body=body,
                attributes=attributes,
            )


class _SharedInstruments:
    """The health instruments of one meter provider, observing every registry bound to it.

    A meter provider hands out one meter per name and keeps only the first
    callbacks of an instrument name, so a second registry in the process (the
    config file's and an app's own) creating its own gauge would never be observed.
    """

    def __init__(self, provider: Any) -> None:
        from opentelemetry import metrics

        self.registries: weakref.WeakSet[HealthRegistry] = weakref.WeakSet()
        meter = metrics.get_meter("otel_monitor.health", meter_provider=provider)
        self.gauge = meter.create_observable_gauge(
            semconv.METRIC_HEALTH_STATUS,
            callbacks=[self._observe],
            description="Health check state: 1 up, 0.5 degraded, 0 down.",
        )  # no unit: no Prometheus suffix
        self.histogram = meter.create_histogram(
            semconv.METRIC_HEALTH_CHECK_DURATION,
            unit="s",
            description="Duration of each health check run.",
            explicit_bucket_boundaries_advisory=list(_DURATION_BUCKETS),
        )

    def _observe(self, options: Any) -> Iterable[Any]:
        return [observation for registry in list(self.registries) for observation in registry.observations()]


_shared_instruments: weakref.WeakKeyDictionary[Any, _SharedInstruments] = weakref.WeakKeyDictionary()
_shared_lock = threading.Lock()


def _instruments_for(provider: Any) -> _SharedInstruments:
    with _shared_lock:
        shared = _shared_instruments.get(provider)
        if shared is None:
            shared = _shared_instruments[provider] = _SharedInstruments(provider)
        return shared


def default_registry() -> HealthRegistry:
    """The process's registry (in the runtime): the one the config file fills and the endpoints use by default."""
    state = runtime.current()
    with state.lock:
        registry = state.health_registry
        if registry is None:
            registry = state.health_registry = HealthRegistry()
        return registry


def set_default_registry(registry: HealthRegistry | None) -> None:
    """Replace the process's registry (tests use this)."""
    state = runtime.current()
    with state.lock:
        state.health_registry = registry
