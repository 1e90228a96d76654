"""The configurator: builds resource, providers, processors, sampler and exporters.

Used by the launcher (``opentelemetry_configurator`` entry point) and by
:func:`otel_monitor.configure`. It goes through the SDK's own
``_initialize_components`` so every standard ``OTEL_*`` variable keeps its
meaning, and adds through that function's hooks:

* the sampler from ``OTEL_TRACES_SAMPLER`` wrapped in
  :class:`~otel_monitor.pipeline.tail_sampling.RecordAllSampler` (metrics stay exact);
* our span and log processors, each behind :mod:`otel_monitor.guard`;
* an export processor that also keeps failed and slow unsampled requests,
  and exporters that count what they drop;
* ``service.instance.id``, unique per process and renewed in forked workers;
* a bounded shutdown, and export warnings at most once per interval.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

from opentelemetry.sdk._configuration import _OTelSDKConfigurator

from otel_monitor import patching, runtime, semconv
from otel_monitor.config.file import EMPTY, ConfigFile, ConfigFileError, file_settings, load_config_file
from otel_monitor.config.settings import ConfigError, Settings, report_problem, resolve
from otel_monitor.runtime import Runtime

_log = logging.getLogger("otel_monitor")


_lock = threading.Lock()


def current() -> Runtime | None:
    """The runtime the configuration installed, if otel-monitor configured the SDK in this process."""
    return runtime.configured()


def load_configuration(overrides: dict[str, Any] | None = None, environ: Any = None) -> tuple[Settings, ConfigFile]:
    """Resolve settings and read the config file; report problems (strict: raise)."""
    overrides = dict(overrides or {})
    environ = os.environ if environ is None else environ
    first = resolve({k: v for k, v in overrides.items() if k in ("config", "strict")}, environ)
    config = EMPTY
    problems: list[str] = list(first.problems)
    if first.config:
        try:
            config = load_config_file(first.config)
        except ConfigFileError as exc:
            report_problem(f"{exc}; running without the config file", strict=first.strict, problems=problems)
    from_file, file_problems = file_settings(config)
    for problem in file_problems:
        report_problem(problem, strict=first.strict, problems=problems)
    settings = resolve(overrides, environ, from_file) if (overrides or from_file) else first
    if settings is not first:
        # Problems of the first pass were already reported once.
        settings.problems[:0] = [p for p in problems if p not in settings.problems]
    else:
        settings.problems[:] = problems
    return settings, config


def _resource_attributes(settings: Settings) -> dict[str, Any]:
    attributes: dict[str, Any] = {semconv.SERVICE_INSTANCE_ID: str(uuid.uuid4())}
    if settings.environment:
        attributes[semconv.DEPLOYMENT_ENVIRONMENT_NAME] = settings.environment
    return attributes


def _renew_instance_id(providers: dict[str, Any]) -> None:
    """After fork a worker is a new instance: give it a new ``service.instance.id``.

    The SDK's providers refresh process-dependent resource attributes in the
    child through ``_update_resource``; we add ours the same way.
    """
    from opentelemetry.sdk.resources import Resource

    renewed = Resource({semconv.SERVICE_INSTANCE_ID: str(uuid.uuid4())})
    for provider in providers.values():
        update = getattr(provider, "_update_resource", None)
        if update is not None:
            update(renewed)


def _fresh_metric_state(meter_provider: Any) -> None:
    """After fork: the child's metric aggregation starts empty, with fresh locks.

    A pre-fork master (gunicorn --preload) runs the SDK too: its collection
    thread may hold an aggregation or export lock at the instant of fork, and
    the child would wait on that copy forever. The parent's counts are the
    parent's anyway; carried into every worker they would be counted twice.
    """
    from opentelemetry.sdk.metrics._internal.metric_reader_storage import MetricReaderStorage

    from otel_monitor.pipeline import instruments as our_metrics

    consumer = getattr(meter_provider, "_measurement_consumer", None)
    if consumer is None:
        return
    consumer._lock = threading.Lock()  # noqa: SLF001 - SDK metric state renewed after fork
    consumer._reader_storages = {  # noqa: SLF001 - SDK metric state renewed after fork
        reader: MetricReaderStorage(
            consumer._sdk_config,  # noqa: SLF001 - SDK metric state renewed after fork
            reader._instrument_class_temporality,  # noqa: SLF001 - SDK metric state renewed after fork
            reader._instrument_class_aggregation,  # noqa: SLF001 - SDK metric state renewed after fork
        )
        for reader in consumer._reader_storages  # noqa: SLF001 - SDK metric state renewed after fork
    }
    for reader in consumer._reader_storages:  # noqa: SLF001 - SDK metric state renewed after fork
        if hasattr(reader, "_export_lock"):
            reader._export_lock = threading.Lock()  # noqa: SLF001 - SDK metric state renewed after fork
        event = getattr(reader, "_shutdown_event", None)
        if event is not None:  # the parent's ticker holds its lock on every wait; the flag stays
            event._at_fork_reinit()  # noqa: SLF001 - threading's own after-fork reset
    our_metrics.after_fork()


def _before_fork() -> None:
    """In the parent, before fork: every exporter client known, so the child need not search."""
    from otel_monitor.fast import otlp_http

    try:
        otlp_http.known_clients()
    except Exception:  # noqa: BLE001 - the child searches again
        pass


def _after_fork_in_child(providers: dict[str, Any]) -> None:
    from otel_monitor import guard
    from otel_monitor.fast import otlp_http

    guard.renew_locks()  # first: internal_error, below too, takes the guard's
    runtime.after_fork()
    with guard.guarded("fork handling"):
        _renew_instance_id(providers)
        otlp_http.fresh_connections_after_fork()
        _fresh_metric_state(providers.get("metrics"))


def _build_pipeline(settings: Settings, config: ConfigFile) -> Any:
    from opentelemetry import _logs, metrics

    from otel_monitor.fast.span_copy import light_copy
    from otel_monitor.pipeline.processors import build_pipeline

    return build_pipeline(
        settings,
        config,
        metrics.get_meter_provider(),
        _logs.get_logger_provider(),
        light_copy,
        direct_histograms(settings),
    )


def direct_histograms(settings: Settings) -> Any:
    """The direct histogram path for the pipeline's instruments; None with ``OTEL_MONITOR_DIRECT_HISTOGRAMS`` off."""
    if not settings.direct_histograms:
        return None
    from otel_monitor.fast.histograms import DirectAggregations

    return DirectAggregations.for_instrument


def configure_sdk(overrides: dict[str, Any] | None = None, **sdk_kwargs: Any) -> Runtime:
    """Configure the SDK once per process; later calls return the first result."""
    with _lock:
        configured = runtime.configured()
        if configured is not None:
            if overrides:
                _log.debug("otel-monitor: already configured; ignoring %s", sorted(overrides))
            return configured
        from otel_monitor.launcher.distro import apply_defaults

        apply_defaults()
        try:
            settings, config = load_configuration(overrides)
            from otel_monitor.launcher.distro import DEFAULTS
            from otel_monitor.launcher.sdk_env import check_sdk_environment

            check_sdk_environment(os.environ, strict=settings.strict, problems=settings.problems, defaults=DEFAULTS)
        except ConfigError as exc:
            # Strict mode: stop the process with the message, not a traceback.
            print(f"otel-monitor: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        return _initialize(settings, config, sdk_kwargs)


def _initialize(settings: Settings, config: ConfigFile, sdk_kwargs: dict[str, Any]) -> Runtime:
    from opentelemetry import _logs, metrics, trace
    from opentelemetry.sdk._configuration import _initialize_components
    from opentelemetry.sdk.trace.sampling import _get_from_env_or_default

    from otel_monitor import guard
    from otel_monitor.fast import batch_queue, otlp_http
    from otel_monitor.pipeline import exporters as export
    from otel_monitor.pipeline.tail_sampling import MonitorSpanExportProcessor, RecordAllSampler

    # Installed first: what the SDK calls back into while it is being built reads it.
    state = runtime.install(Runtime(settings=settings, config=config, problems=list(settings.problems)))
    export.install_warning_limit(settings.export_warning_interval)
    from otel_monitor.pipeline.processors import LateBoundLogExporter, LateBoundSpanExporter

    # The SDK creates the export processors before the meter and logger
    # providers our pipeline needs exist: the late-bound wrappers enrich and
    # scrub through whichever pipeline is bound at export time (a default one
    # until then, so nothing ever leaves unredacted).
    def export_span_processor(span_exporter: Any, *args: Any, **kwargs: Any) -> Any:
        processor = MonitorSpanExportProcessor(
            LateBoundSpanExporter(
                export.CountingSpanExporter(
                    otlp_http.FastSpanExporter.wrap(span_exporter)
                    if settings.lean_otlp
                    else otlp_http.speed_up_exporter(span_exporter)
                )
            ),
            keep_errors=settings.keep_errors,
            slow_threshold_ms=settings.slow_threshold_ms,
            client_errors_fail=settings.client_errors_fail,
        )
        export.watch("traces", processor)  # what its queue still holds at exit is counted
        return processor

    def export_log_processor(exporter: Any, *args: Any, **kwargs: Any) -> Any:  # the SDK's parameter names
        # Counts what its bounded queue drops in an error storm, and what is left at exit.
        return export.CountingBatchLogRecordProcessor(
            LateBoundLogExporter(export.CountingLogExporter(otlp_http.speed_up_exporter(exporter))),
            batch_queue.would_drop,
        )

    # Our span and log processors go first, through the SDK's span_processors= and
    # log_record_processors=. They need the meter and logger providers, which the SDK
    # builds after the tracer provider: the guards are handed over now and given
    # their processors once the pipeline is built (until then, and if building it
    # fails, they do nothing).
    span_slot, log_slot = guard.GuardedSpanProcessor(), guard.GuardedLogRecordProcessor()
    sdk_kwargs["span_processors"] = [span_slot, *(sdk_kwargs.get("span_processors") or ())]
    sdk_kwargs["log_record_processors"] = [log_slot, *(sdk_kwargs.get("log_record_processors") or ())]
    sdk_kwargs.setdefault("resource_attributes", {}).update(_resource_attributes(settings))
    sdk_kwargs["exporter_args_map"] = export.ExporterArguments(sdk_kwargs.get("exporter_args_map") or {})
    with _lean_otlp_exporters(settings.lean_otlp):
        _initialize_components(
            sampler=RecordAllSampler(_get_from_env_or_default(), parent_rules=_sampler_rules(settings)),
            export_span_processor=export_span_processor,
            export_log_record_processor=export_log_processor,
            setup_logging_handler=False,
            **sdk_kwargs,
        )
    if "opentelemetry.exporter.otlp.common.http" in sys.modules:  # OTLP/HTTP in use: the app's own exporters too
        otlp_http.remember_new_clients()
    tracer_provider = trace.get_tracer_provider()
    if settings.lean_spans:
        from otel_monitor.fast import spans

        spans.install(tracer_provider)
    if settings.lean_tracebacks:
        from otel_monitor.fast import tracebacks

        tracebacks.install()
    meter_provider = metrics.get_meter_provider()
    logger_provider = _logs.get_logger_provider()
    _cache_loggers(logger_provider)
    state.providers = {"traces": tracer_provider, "metrics": meter_provider, "logs": logger_provider}
    _wrap_metric_exporters(meter_provider)
    if settings.status_path:
        with guard.guarded("status page"):
            from otel_monitor.launcher.status_page import install as install_status_page

            install_status_page(settings, config, meter_provider)

    self_meter = meter_provider.get_meter("otel_monitor")
    state.internal_errors = guard.internal_errors_counter(self_meter)
    export.DROPPED.bind_meter(self_meter)

    try:
        with guard.guarded("processor pipeline setup"):
            pipeline = _build_pipeline(settings, config)
            (span_processor,) = pipeline.span_processors
            (log_processor,) = pipeline.log_record_processors
            span_slot.run(span_processor)
            log_slot.run(log_processor)
            if settings.lean_tracebacks:
                from otel_monitor.fast import tracebacks

                tracebacks.defer_log_stacktraces(logger_provider)
            state.problems.extend(pipeline.problems)
    except ConfigError as exc:  # strict mode: a bad rule stops the process
        print(f"otel-monitor: {exc}", file=sys.stderr)
        raise SystemExit(2) from None

    if settings.runtime_metrics:
        with guard.guarded("runtime metrics"):
            from otel_monitor.pipeline.runtime_metrics import start_runtime_metrics

            start_runtime_metrics(meter_provider, settings)

    if config.section("health") is not None or settings.health_endpoints:
        try:
            with guard.guarded("health checks"):
                from otel_monitor.health.endpoints import install_from_config

                install_from_config(config, settings)
        except ConfigError as exc:  # strict mode: a bad health section stops the process
            print(f"otel-monitor: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    export.bounded_shutdown(
        [tracer_provider, meter_provider, logger_provider],
        settings.shutdown_timeout,
        otlp_http.one_attempt_from_now_on,
    )
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(before=_before_fork, after_in_child=lambda: _after_fork_in_child(state.providers))
    return state


def _sampler_rules(settings: Settings) -> Any:
    """How the lean span type reads the SDK sampler's rules; None (always ask it) with that path off."""
    if not settings.lean_spans:
        return None
    from otel_monitor.fast.sampling import parent_rules

    return parent_rules


@contextlib.contextmanager
def _lean_otlp_exporters(enabled: bool) -> Iterator[None]:
    """While the SDK builds its exporters, OTLP/HTTP ones are :mod:`otel_monitor.fast.otlp_exporters`'s.

    The SDK resolves each configured exporter name to a class through entry
    points; ``otlp_proto_http`` (also what ``otlp`` means with an
    ``http/protobuf`` protocol) names its own exporters, whose modules load
    the protobuf runtime. Any other exporter, and OTLP/HTTP when the SDK's
    HTTP exporter package is not installed, is the SDK's to resolve.

    The one patch of the SDK's configurator (compat: lean_otlp):
    ``_initialize_components`` takes exporter names, not exporter classes,
    so no argument of it can name ours; the lookup is replaced while it runs.
    """
    from opentelemetry.sdk import _configuration

    if not enabled:
        yield
        return
    original = _configuration._import_exporters  # noqa: SLF001 - the SDK configurator's exporter lookup (compat: lean_otlp)

    def import_exporters(traces: Sequence[str], metrics: Sequence[str], logs: Sequence[str]) -> Any:
        if not any("otlp_proto_http" in names for names in (traces, metrics, logs)):
            return original(traces, metrics, logs)
        try:
            from otel_monitor.fast.otlp_exporters import EXPORTERS
        except Exception as exc:  # noqa: BLE001 - an SDK whose exporter package moved on: its own exporters
            _log.warning("otel-monitor: OTLP/HTTP through the SDK's own exporters: %s", exc)
            return original(traces, metrics, logs)

        def others(names: Any) -> list[str]:
            return [name for name in names if name != "otlp_proto_http"]

        found: tuple[dict[str, Any], ...] = original(others(traces), others(metrics), others(logs))
        ordered: list[dict[str, Any]] = []
        for names, signal, classes in zip((traces, metrics, logs), ("traces", "metrics", "logs"), found, strict=True):
            # In the order configured, as the SDK would build them.
            ordered.append(
                {
                    name: EXPORTERS[signal] if name == "otlp_proto_http" else classes[name]
                    for name in names
                    if name == "otlp_proto_http" or name in classes
                }
            )
        return tuple(ordered)

    patching.replace(_configuration, "_import_exporters", import_exporters)
    try:
        yield
    finally:
        patching.restore(_configuration, "_import_exporters")


def _cache_loggers(provider: Any) -> None:
    """``get_logger`` without its two locks for a logger already made.

    FastAPI's native telemetry asks for its logger on every request; the SDK's
    provider looks it up in its cache under a lock and adds it to its set of
    active loggers under another.  The same loggers come from a plain dict
    here, filled by the SDK's own ``get_logger`` (loggers with attributes are
    not cached, as in the SDK).
    """
    from opentelemetry.sdk._logs import LoggerProvider

    if type(provider) is not LoggerProvider:
        return
    original = provider.get_logger
    known: dict[tuple[Any, ...], Any] = {}

    def get_logger(name: str, version: str | None = None, schema_url: str | None = None, attributes: Any = None) -> Any:
        if attributes is not None:
            return original(name, version, schema_url, attributes)
        key = (name, version, schema_url)
        logger = known.get(key)
        if logger is None:
            logger = original(name, version, schema_url)
            if len(known) < 1024:
                known[key] = logger
        return logger

    patching.replace(provider, "get_logger", get_logger)  # one instance's cache in front of its method


def _wrap_metric_exporters(meter_provider: Any) -> None:
    """Metric attributes are scrubbed (with the bound pipeline's redactor) and drops counted."""
    from otel_monitor.fast import otlp_http
    from otel_monitor.pipeline import exporters as export
    from otel_monitor.pipeline import processors

    def redactor() -> Any:
        return processors.active_or_default().redactor

    for reader in getattr(meter_provider, "_metric_readers", None) or ():
        inner = getattr(reader, "_exporter", None)
        if inner is not None and not isinstance(inner, export.CountingMetricExporter):
            # The SDK's MetricExporter keeps its preferences private: the wrappers are given inner's.
            preferences = (
                inner._preferred_temporality,  # noqa: SLF001 - the SDK's MetricExporter keeps these private
                inner._preferred_aggregation,  # noqa: SLF001 - the SDK's MetricExporter keeps these private
            )
            reader._exporter = export.CountingMetricExporter(  # noqa: SLF001 - the SDK reader's exporter, wrapped
                export.RedactingMetricExporter(otlp_http.speed_up_exporter(inner), redactor, *preferences),
                *preferences,
            )


class MonitorConfigurator(_OTelSDKConfigurator):
    """otel-monitor's configurator for ``opentelemetry-instrument``."""

    def _configure(self, **kwargs: Any) -> None:
        if os.environ.get("OTEL_CONFIG_FILE"):
            _log.warning(
                "otel-monitor: OTEL_CONFIG_FILE is set, so the SDK is configured from that file "
                "and otel-monitor's processors, sampling and exporters are not installed"
            )
            super()._configure(**kwargs)
            return
        try:
            state = configure_sdk(None, **kwargs)
        except SystemExit as exc:  # strict mode: the one line is printed
            from otel_monitor.launcher.sdk_env import exit_launcher

            exit_launcher(exc.code)
            raise
        start_instrumentations(state.settings)
        if state.settings.gc_freeze:
            freeze_what_lives_for_the_process()


def start_instrumentations(settings: Settings) -> None:
    from otel_monitor.launcher.distro import MonitorDistro
    from otel_monitor.launcher.instrumentations import InstrumentationLoader

    InstrumentationLoader(settings, MonitorDistro().load_instrumentor).start()


def freeze_what_lives_for_the_process() -> None:
    """Take everything that exists now out of the cyclic garbage collector's scans.

    Run by the launcher's configurator, before the app is imported: what exists
    then (the SDK's providers, exporters and modules, ours, the launcher's
    machinery and the modules loaded before the app) lives as long as the
    process. About 42,000 objects are frozen (a bare interpreter holds about
    8,000), and each full collection (tens a minute in a busy server) walked
    them all; frozen, no collection looks at them again. The instrumentations
    load when their library is imported, later, and are not frozen. A cycle
    that was already garbage stays in memory (about a hundred objects, once);
    a full ``gc.collect()`` first would cost startup some 9 ms. Never done for
    ``otel_monitor.configure()``, which runs inside an app that may hold
    garbage of its own (a test suite).
    """
    import gc

    gc.freeze()
