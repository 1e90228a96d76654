"""The configuration checked as the launcher reads it, for the commands that report on it.

``otel-monitor config`` and ``otel-monitor rules`` must say about a config
file exactly what the launcher says when it starts the app: the same
settings resolution, the same loader for every section with the same
messages, and the same strict handling (``OTEL_MONITOR_STRICT=true``: the
first problem is an error). The configurator builds objects from each
section (:func:`otel_monitor.pipeline.processors.build_pipeline`, the health
registry); here the same loaders run without building anything, so nothing
is started, opened or bound.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from otel_monitor.config.file import ConfigFile
from otel_monitor.config.settings import Settings, report_problem

# The sections whose loaders the configurator runs, in its order.
SECTIONS = ("slos", "errors", "redaction", "funnels", "operations", "health", "kpis", "uptime", "alerting")


@dataclass
class CheckedConfiguration:
    settings: Settings
    config: ConfigFile
    problems: list[str] = field(default_factory=list)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """The commands print each problem themselves; the launcher's log line would repeat it."""
    logger = logging.getLogger("otel_monitor")
    previous = logger.disabled
    logger.disabled = True
    try:
        yield
    finally:
        logger.disabled = previous


def check_configuration(
    config_path: str | None = None, environ: Mapping[str, str] | None = None, skip: tuple[str, ...] = ()
) -> CheckedConfiguration:
    """Settings, config file and every section, checked as the launcher checks them.

    ``config_path`` overrides ``OTEL_MONITOR_CONFIG`` (``otel-monitor rules
    --config``); ``skip`` leaves out sections the caller reports on its own.
    Raises :class:`~otel_monitor.config.settings.ConfigError` in strict mode.
    """
    from otel_monitor.health.checks import load_health_config
    from otel_monitor.launcher.configurator import load_configuration
    from otel_monitor.semantics.errors import load_error_rules
    from otel_monitor.semantics.journeys import load_funnels
    from otel_monitor.semantics.operations import load_operation_rules
    from otel_monitor.semantics.redaction import load_redactor
    from otel_monitor.semantics.slo import load_slos_or_defaults

    with _quiet():
        settings, config = load_configuration({"config": config_path} if config_path else None, environ)
        problems = list(settings.problems)
        strict = bool(settings.strict)
        if "slos" not in skip:
            load_slos_or_defaults(config, strict=strict, problems=problems)
        if "errors" not in skip:
            load_error_rules(config, strict=strict, problems=problems)
        if "redaction" not in skip:
            load_redactor(
                settings.redact,
                settings.redact_patterns or (),
                settings.safe_keys or (),
                config,
                strict=strict,
                problems=problems,
            )
        if "funnels" not in skip:
            load_funnels(config, strict=strict, problems=problems)
        if "operations" not in skip:
            load_operation_rules(config, strict=strict, problems=problems)
        if "kpis" not in skip:
            from otel_monitor.semantics.kpis import load_kpis

            load_kpis(config, strict=strict, problems=problems)
        if "uptime" not in skip:
            from otel_monitor.semantics.uptime import load_uptime

            load_uptime(config, strict=strict, problems=problems)
        if "alerting" not in skip:
            from otel_monitor.semantics.alert_timing import load_runbook_base

            load_runbook_base(config, strict=strict, problems=problems)
        if "health" not in skip:
            for problem in load_health_config(config).problems:
                report_problem(problem, strict=strict, problems=problems)
    return CheckedConfiguration(settings, config, problems)
