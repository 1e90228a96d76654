"""Exporting without hurting the app when the receiver is down.

* :class:`CountingSpanExporter` / :class:`CountingLogExporter` /
  :class:`CountingMetricExporter` count what a failed export dropped in
  ``monitor.sdk.dropped`` (attribute ``monitor.signal``).
* :class:`EveryIntervalFilter` lets an exporter's warnings through at most once
  per interval per logger, and says how many it held back.
* :class:`CountingBatchLogRecordProcessor` counts the log records its full
  queue pushes out (an error storm larger than the exporter can carry) and
  those emitted after shutdown, in ``monitor.sdk.dropped``.
* :func:`bounded_shutdown` flushes every provider at exit within a deadline,
  however slowly the receiver answers, all providers at once; what it could
  not deliver in time is counted and said on stderr.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExporter, LogRecordExportResult
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from otel_monitor import patching, semconv
from otel_monitor.guard import internal_error, renew_after_fork
from otel_monitor.semantics.redaction import Redactor, scrub_metrics_data

_log = logging.getLogger("otel_monitor")

# Loggers through which the SDK and the OTLP exporters report export trouble.
EXPORT_LOGGERS = (
    "opentelemetry.exporter.otlp.proto.http.trace_exporter",
    "opentelemetry.exporter.otlp.proto.http.metric_exporter",
    "opentelemetry.exporter.otlp.proto.http._log_exporter",
    "opentelemetry.exporter.otlp.common.http",
    "opentelemetry.exporter.otlp.proto.grpc.exporter",
    "opentelemetry.sdk._shared_internal",
    "opentelemetry.sdk.metrics._internal.export",
    "opentelemetry.sdk.trace.export",
    "opentelemetry.sdk._logs._internal.export",
    "opentelemetry.exporter.otlp.proto.common._internal",
)


class DropCounter:
    """``monitor.sdk.dropped``: items a failed export lost, per signal."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {"traces": 0, "metrics": 0, "logs": 0}
        self._counter: Any = None
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")  # an export thread takes it

    def bind_meter(self, meter: Any) -> None:
        self._counter = meter.create_counter(
            semconv.METRIC_SELF_DROPPED,
            unit="{item}",
            description="Spans, log records and metric points otel-monitor could not deliver.",
        )

    def add(self, signal: str, n: int) -> None:
        if n <= 0:
            return
        with self._lock:
            self.counts[signal] += n
        if self._counter is not None:
            self._counter.add(n, {semconv.MONITOR_SIGNAL: signal})


DROPPED = DropCounter()


# Batch processors and counting exporters whose undelivered items are counted at exit: (signal, object).
_WATCHED: list[tuple[str, weakref.ref[Any]]] = []


def watch(signal: str, item: Any) -> None:
    """Count ``item``'s undelivered items (a batch processor's queue, an exporter's batch in flight) at exit."""
    _WATCHED.append((signal, weakref.ref(item)))


def undelivered(claim: bool = False) -> dict[str, int]:
    """Per signal: items still queued in the watched batch processors, or handed to an export not yet done.

    ``claim``: the exports in flight are counted here, not again by their exporter should they fail later.
    """
    counts: dict[str, int] = {}
    for signal, ref in list(_WATCHED):
        item = ref()
        if item is None:
            continue
        # private: the SDK BatchProcessor's deque, read only at exit (absent: the in-flight count);
        # tests/unit/test_shutdown_drops.py checks it against the installed SDK.
        batch = getattr(item, "_batch_processor", None)
        queue = getattr(batch, "_queue", None)
        n = len(queue) if queue is not None else int(getattr(item, "in_flight", 0))
        if claim and queue is None and n:
            item.in_flight = 0
        if n:
            counts[signal] = counts.get(signal, 0) + n
    return counts


# Set when the exit flush begins. From then on the SDK's HTTP clients try each export once, and an
# export already waiting to retry wakes up and gives up without that retry.
EXITING = threading.Event()


def export_through_exit(export: Callable[[], Any], success: Any, failure: Any) -> Any:
    """``export()``, tried once more if it failed after the exit flush began while it was under way.

    Such an export was waiting out a backoff when the exit cut the wait short: its batch would be
    dropped without the retry it was waiting for, even with the receiver back (a collector restarted
    just before the app stops). The second call is one attempt, without backoff.
    """
    began_before_exit = not EXITING.is_set()
    try:
        result = export()
    except Exception:  # noqa: BLE001 - the batch processor would only log it
        result = failure
    if result is not success and began_before_exit and EXITING.is_set():
        try:
            result = export()
        except Exception:  # noqa: BLE001
            result = failure
    return result


class CountingSpanExporter(SpanExporter):
    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.in_flight = 0  # spans handed to the inner exporter, not yet answered
        watch("traces", self)

    def export(self, spans: Sequence[Any]) -> SpanExportResult:
        self.in_flight = len(spans)
        result = export_through_exit(
            lambda: self.inner.export(spans), SpanExportResult.SUCCESS, SpanExportResult.FAILURE
        )
        unclaimed, self.in_flight = self.in_flight, 0  # 0 when the exit report counted them already
        if result is not SpanExportResult.SUCCESS:
            DROPPED.add("traces", unclaimed)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class CountingLogExporter(LogRecordExporter):
    def __init__(self, inner: LogRecordExporter) -> None:
        self.inner = inner
        self.in_flight = 0  # records handed to the inner exporter, not yet answered
        watch("logs", self)

    def export(self, batch: Sequence[Any]) -> LogRecordExportResult:
        self.in_flight = len(batch)
        result = export_through_exit(
            lambda: self.inner.export(batch), LogRecordExportResult.SUCCESS, LogRecordExportResult.FAILURE
        )
        unclaimed, self.in_flight = self.in_flight, 0  # 0 when the exit report counted them already
        if result is not LogRecordExportResult.SUCCESS:
            DROPPED.add("logs", unclaimed)
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class CountingBatchLogRecordProcessor(BatchLogRecordProcessor):
    """The SDK's batch log processor, counting what it drops in ``monitor.sdk.dropped``.

    Its queue is bounded: when the exporter cannot keep up (an error storm
    logging faster than the receiver takes it) the oldest record is pushed
    out, deliberately, and after shutdown new records are refused; the SDK
    only logs both.  Each one is counted here.  Its queue is also watched,
    so that what is still in it when the process exits is counted too.

    ``would_drop(processor)``: whether the SDK drops the record it is given
    now; it reads the SDK's private queue, so the launcher passes it
    (``otel_monitor.fast.batch_queue.would_drop``). Without it, drops at emit
    are not counted.
    """

    def __init__(
        self, exporter: LogRecordExporter, would_drop: Callable[[Any], bool] | None = None, **kwargs: Any
    ) -> None:
        super().__init__(exporter, **kwargs)
        self._would_drop = would_drop
        watch("logs", self)

    def on_emit(self, log_record: Any) -> None:
        would_drop = self._would_drop
        if would_drop is not None and would_drop(self):
            DROPPED.add("logs", 1)
        super().on_emit(log_record)


class CountingMetricExporter(MetricExporter):
    """Counts what ``inner`` fails to export; the preferences should be ``inner``'s (see RedactingMetricExporter)."""

    def __init__(
        self, inner: MetricExporter, preferred_temporality: Any = None, preferred_aggregation: Any = None
    ) -> None:
        super().__init__(preferred_temporality=preferred_temporality, preferred_aggregation=preferred_aggregation)
        self.inner = inner

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        result = export_through_exit(
            lambda: self.inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs),
            MetricExportResult.SUCCESS,
            MetricExportResult.FAILURE,
        )
        if result is not MetricExportResult.SUCCESS:
            DROPPED.add("metrics", _count_points(metrics_data))
        return result

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self.inner.force_flush(timeout_millis=timeout_millis)


def _count_points(metrics_data: Any) -> int:
    try:
        return sum(
            len(m.data.data_points)
            for rm in metrics_data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
        )
    except Exception:  # noqa: BLE001
        return 0


class EveryIntervalFilter(logging.Filter):
    """Pass one warning-or-worse record per ``interval`` seconds per logger."""

    def __init__(self, interval: float) -> None:
        super().__init__()
        self.interval = interval
        self._next: dict[str, float] = {}
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()
        renew_after_fork(self, "_lock")  # an export thread takes it

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING or self.interval <= 0:
            return True
        now = time.monotonic()
        with self._lock:
            if now < self._next.get(record.name, 0.0):
                self._held[record.name] = self._held.get(record.name, 0) + 1
                return False
            self._next[record.name] = now + self.interval
            held = self._held.pop(record.name, 0)
        if held:
            record.msg = f"{record.msg} ({held} similar messages held back in the last {self.interval:g}s)"
        return True


class _OwnStderrHandler(logging.StreamHandler):
    """Marks the stderr handler we attach, so a second setup does not add another."""


def install_warning_limit(interval: float) -> EveryIntervalFilter:
    """Export trouble goes to stderr, at most once per ``interval`` per logger.

    These loggers get an :class:`EveryIntervalFilter` and a stderr handler of
    their own, and stop propagating: their records must not travel through
    the OTLP log handler (feeding the failure they report), nor depend on
    whether the app configured a console handler on the root logger.
    """
    import sys

    limiter = EveryIntervalFilter(interval)
    for name in (*EXPORT_LOGGERS, "otel_monitor"):
        logger = logging.getLogger(name)
        for existing in [f for f in logger.filters if isinstance(f, EveryIntervalFilter)]:
            logger.removeFilter(existing)
        if name != "otel_monitor":
            logger.addFilter(limiter)
        if not any(isinstance(h, _OwnStderrHandler) for h in logger.handlers):
            handler = _OwnStderrHandler(sys.stderr)
            handler.setLevel(logging.WARNING)
            # Our own lines already say "otel-monitor: ..."; the SDK's say where they come from.
            handler.setFormatter(
                logging.Formatter("%(message)s" if name == "otel_monitor" else "otel-monitor: %(name)s: %(message)s")
            )
            logger.addHandler(handler)
        logger.propagate = False
    return limiter


def bounded_shutdown(
    providers: Sequence[Any], timeout_s: float, before_final_export: Callable[[], None] | None = None
) -> Callable[[], None]:
    """Replace the providers' own exit handlers by one that gives up after ``timeout_s``.

    Each provider's ``shutdown`` flushes through its exporters; with the
    receiver down that can take the exporters' whole retry budget. Running
    them on a daemon thread joined with a deadline lets the process exit on
    time with what could be sent.
    """
    for provider in providers:
        # The SDK names it _atexit_handler (traces, metrics) or _at_exit_handler (logs).
        for attribute in ("_atexit_handler", "_at_exit_handler"):
            handler = getattr(provider, attribute, None)
            if handler is not None:
                atexit.unregister(handler)
                setattr(provider, attribute, None)

    def shut_down(provider: Any) -> None:
        try:
            provider.shutdown()
        except Exception:  # noqa: BLE001 - exiting anyway
            pass

    done = threading.Event()

    def at_exit() -> None:
        if done.is_set():
            return
        done.set()
        EXITING.set()
        if before_final_export is not None:  # e.g. each HTTP client tries its final export once
            before_final_export()
        # All at once: a slow span or metric flush must not use up the logs' time (error logs come last
        # in the providers' order, and matter most when the process is failing).
        deadline = time.monotonic() + timeout_s
        workers = [
            threading.Thread(target=shut_down, args=(provider,), name="otel-monitor-shutdown", daemon=True)
            for provider in providers
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(max(0.0, deadline - time.monotonic()))
        if any(worker.is_alive() for worker in workers):
            report_undelivered(timeout_s)
        # logging.shutdown() runs after us and flushes every handler; the OTLP
        # logging handler's flush would wait on the exporter again.
        for handler in logging.getLogger().handlers:
            if type(handler).__name__ == "LoggingHandler":
                patching.replace(handler, "flush", lambda: None)

    atexit.register(at_exit)
    _flush_on_sigterm(at_exit)
    return at_exit


def report_undelivered(timeout_s: float) -> dict[str, int]:
    """Count what the exit flush could not deliver in time, and say so on stderr (never silently)."""
    lost = undelivered(claim=True)
    for signal, n in lost.items():
        DROPPED.add(signal, n)
    names = {"logs": "log records", "traces": "spans"}
    what = ", ".join(f"{n} {names.get(signal, signal)}" for signal, n in sorted(lost.items()))
    # Straight to stderr: the rate-limited export warnings must not hold back this one line.
    print(
        f"otel-monitor: telemetry flush at exit took longer than {timeout_s:g}s; exiting without "
        f"{what or 'the rest'} (counted in {semconv.METRIC_SELF_DROPPED})",
        file=sys.stderr,
        flush=True,
    )
    return lost


def _flush_on_sigterm(flush: Any) -> None:
    """Flush (bounded) when SIGTERM would otherwise kill the process without exit handlers.

    With the default SIGTERM disposition Python dies at once and ``atexit``
    never runs; uvicorn also ends its graceful shutdown by re-raising SIGTERM
    with the previous handler restored. Installed only over the default
    disposition, never over an app's own handler: ours flushes, then lets the
    signal do what it would have done.
    """
    import signal

    if threading.current_thread() is not threading.main_thread():
        return
    try:
        if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
            return

        def on_sigterm(signum: int, frame: Any) -> None:
            flush()
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

        signal.signal(signal.SIGTERM, on_sigterm)
    except (ValueError, OSError):  # not the main interpreter, or signals unavailable
        pass


_SIGNAL_OF_EXPORTER = {"OTLPSpanExporter": "TRACES", "OTLPMetricExporter": "METRICS", "OTLPLogExporter": "LOGS"}

# What `requests` honours and http.client alone does not: with any of these set, the
# exporters keep their default `requests` transport, so nothing changes for them.
_REQUESTS_ONLY_ENVIRONMENT = (
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NETRC",
    "OTEL_PYTHON_EXPORTER_OTLP_HTTP_CREDENTIAL_PROVIDER",
)


def needs_requests(signal: str, environ: Any = None) -> str | None:
    """Why the ``signal`` exporter must keep the ``requests`` transport, or None.

    ``requests`` reads proxies and ``~/.netrc`` from the environment, and
    credential providers hand the exporter a ``requests`` session; http.client
    alone does none of that. (Its CA-bundle variables are honoured by
    :func:`light_transport_args`, unless one names a directory.)
    """
    import os

    env = os.environ if environ is None else environ
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        if env.get(name) and os.path.isdir(env[name]):
            return name
    for name in (*_REQUESTS_ONLY_ENVIRONMENT, f"OTEL_PYTHON_EXPORTER_OTLP_HTTP_{signal}_CREDENTIAL_PROVIDER"):
        if env.get(name):
            return name
    if os.path.exists(os.path.expanduser("~/.netrc")):
        return "~/.netrc"
    return None


def _default_ca_bundle(env: Any) -> str | bool:
    """The CA bundle ``requests`` would verify against: its variables, then certifi's, else the system store."""
    bundle = env.get("REQUESTS_CA_BUNDLE") or env.get("CURL_CA_BUNDLE")
    if bundle:
        return str(bundle)
    try:
        import certifi

        return str(certifi.where())
    except Exception:  # noqa: BLE001 - certifi missing or unreadable: the system store then
        return True


def light_transport_args(exporter_class: Any, environ: Any = None) -> dict[str, Any] | None:
    """Constructor arguments giving an OTLP/HTTP exporter our transport; None to leave it.

    The transport is :mod:`otel_monitor.pipeline.transport`'s.

    The exporters' default transport imports ``requests`` (with charset
    detection, cookie jars, IDNA, urllib3...), a fifth of our startup, to
    send one POST that the standard library's ``http.client`` does alone.
    Certificates follow the exporter's own precedence (per-signal variable,
    then the general one), and the default CA bundle is the one ``requests``
    would use (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, then certifi's).
    """
    import os

    signal = _SIGNAL_OF_EXPORTER.get(getattr(exporter_class, "__name__", ""))
    module = getattr(exporter_class, "__module__", "")
    ours = ("opentelemetry.exporter.otlp.proto.http", "otel_monitor.fast.otlp_exporters")
    if signal is None or not module.startswith(ours):
        return None
    env = os.environ if environ is None else environ
    if needs_requests(signal, env):
        return None
    try:
        import inspect

        from otel_monitor.pipeline.transport import HTTPClientTransport

        if "_transport" not in inspect.signature(exporter_class.__init__).parameters:
            return None
    except Exception:  # noqa: BLE001 - an SDK without pluggable transports: its default it is
        return None
    verify: str | bool = (
        env.get(f"OTEL_EXPORTER_OTLP_{signal}_CERTIFICATE")
        or env.get("OTEL_EXPORTER_OTLP_CERTIFICATE")
        or _default_ca_bundle(env)
    )
    key = env.get(f"OTEL_EXPORTER_OTLP_{signal}_CLIENT_KEY") or env.get("OTEL_EXPORTER_OTLP_CLIENT_KEY")
    certificate = env.get(f"OTEL_EXPORTER_OTLP_{signal}_CLIENT_CERTIFICATE") or env.get(
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
    )
    cert: str | tuple[str, str] | None = (certificate, key) if certificate and key else certificate
    return {"_transport": HTTPClientTransport(verify=verify, cert=cert)}


class ExporterArguments(dict[Any, Any]):
    """``exporter_args_map`` for the SDK's ``_initialize_components``.

    What the caller gave for an exporter class wins; the SDK's OTLP/HTTP
    exporters otherwise get :func:`light_transport_args`. Nothing is imported
    or built for an exporter that is not configured.
    """

    def get(self, exporter_class: Any, default: Any = None) -> Any:
        if exporter_class in self:
            return self[exporter_class]
        if getattr(exporter_class, "__module__", "") == "otel_monitor.fast.otlp_exporters":
            # Arguments given for the SDK's exporter of that signal are for ours, which stands in for it.
            for given, args in self.items():
                if getattr(given, "__name__", None) == exporter_class.__name__ and getattr(
                    given, "__module__", ""
                ).startswith("opentelemetry.exporter.otlp.proto.http"):
                    return args
        try:
            args = light_transport_args(exporter_class)
        except Exception:  # noqa: BLE001 - the default transport is always a safe answer
            args = None
        return args if args is not None else ({} if default is None else default)

    def __bool__(self) -> bool:  # the SDK replaces a falsy map with {}
        return True


class RedactingMetricExporter(MetricExporter):
    """Export wrapper: scrubs metric point attributes, then hands the data to ``inner``.

    ``redactor`` is a :class:`Redactor` or a function returning the one to use
    at each export (so a configurator may wrap exporters before the pipeline
    that holds the configured redactor exists).  Data that cannot be scrubbed
    is not exported: the failure is contained and counted.

    ``preferred_temporality`` and ``preferred_aggregation`` should be
    ``inner``'s: the SDK's ``MetricExporter`` keeps them private, so the
    launcher, which may read them, passes them in.
    """

    def __init__(
        self,
        inner: Any,
        redactor: Redactor | Callable[[], Redactor],
        preferred_temporality: Any = None,
        preferred_aggregation: Any = None,
    ) -> None:
        super().__init__(preferred_temporality=preferred_temporality, preferred_aggregation=preferred_aggregation)
        self.inner = inner
        self._redactor: Callable[[], Redactor] = (lambda: redactor) if isinstance(redactor, Redactor) else redactor

    def export(self, metrics_data: Any, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        try:
            scrubbed = scrub_metrics_data(self._redactor(), metrics_data)
        except Exception as exc:  # noqa: BLE001 - never export points we could not scrub
            internal_error("metric export redaction", exc)
            return MetricExportResult.FAILURE
        return self.inner.export(scrubbed, timeout_millis=timeout_millis, **kwargs)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self.inner.shutdown(timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return bool(self.inner.force_flush(timeout_millis=timeout_millis))
