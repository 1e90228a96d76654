"""Standard ``OTEL_*`` variables checked before the SDK reads them.

The SDK raises on many values it cannot use (``OTEL_BSP_MAX_QUEUE_SIZE=-1``,
``OTEL_EXPORTER_OTLP_PROTOCOL=carrier-pigeon``, an exporter name nothing
installed provides...): a 20-line traceback, and nothing is exported.  Here
each such value gets one clear line naming the variable, and the variable is
put back to its default (otel-monitor's where the distro sets one, else the
SDK's, by removing the variable), so exporting goes on.  Under
``OTEL_MONITOR_STRICT=true`` the first one stops the process instead.

Values the SDK already copes with itself (it logs and falls back) are left to
it.  Only the launcher imports this module: it reads entry points.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass

from otel_monitor.config.settings import report_problem


def _positive_int(value: str) -> str | None:
    try:
        number = int(value.strip())
    except ValueError:
        return "expected a whole number"
    return None if number > 0 else "expected a number above 0"


def _non_negative_int(value: str) -> str | None:
    try:
        number = int(value.strip())
    except ValueError:
        return "expected a whole number"
    return None if number >= 0 else "expected a number of at least 0"


def _positive_number(value: str) -> str | None:
    try:
        number = float(value.strip())
    except ValueError:
        return "expected a number"
    return None if math.isfinite(number) and number > 0 else "expected a finite number above 0"


def _one_of(*choices: str) -> Callable[[str], str | None]:
    def check(value: str) -> str | None:
        return None if value.strip() in choices else f"expected one of {', '.join(choices)}"

    return check


def _entry_points(group: str, *also: str) -> Callable[[str], str | None]:
    """A comma-separated list of names, each an installed entry point of ``group`` (or one of ``also``)."""

    def check(value: str) -> str | None:
        from importlib.metadata import entry_points

        installed = {ep.name for ep in entry_points(group=group)} | set(also)
        names = [name.strip() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in installed]
        if not unknown:
            return None
        return (
            f"no {group.removeprefix('opentelemetry_').replace('_', ' ')} named "
            f"{', '.join(map(repr, unknown))} is installed (installed: {', '.join(sorted(installed))})"
        )

    return check


@dataclass(frozen=True)
class _Rule:
    variable: str
    check: Callable[[str], str | None]
    sdk_default: str  # what the SDK uses when the variable is unset, in words


_PROTOCOLS = _one_of("grpc", "http/protobuf")
_COUNT = "128"
_UNLIMITED = "no limit"

RULES: tuple[_Rule, ...] = (
    _Rule("OTEL_BSP_MAX_QUEUE_SIZE", _positive_int, "2048"),
    _Rule("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", _positive_int, "512"),
    _Rule("OTEL_BSP_SCHEDULE_DELAY", _positive_number, "5000"),
    _Rule("OTEL_BLRP_MAX_QUEUE_SIZE", _positive_int, "2048"),
    _Rule("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", _positive_int, "512"),
    _Rule("OTEL_BLRP_SCHEDULE_DELAY", _positive_number, "1000"),
    _Rule("OTEL_METRIC_EXPORT_INTERVAL", _positive_number, "60000"),
    _Rule("OTEL_EXPORTER_OTLP_PROTOCOL", _PROTOCOLS, "http/protobuf"),
    _Rule("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", _PROTOCOLS, "OTEL_EXPORTER_OTLP_PROTOCOL's"),
    _Rule("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", _PROTOCOLS, "OTEL_EXPORTER_OTLP_PROTOCOL's"),
    _Rule("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", _PROTOCOLS, "OTEL_EXPORTER_OTLP_PROTOCOL's"),
    _Rule("OTEL_TRACES_EXPORTER", _entry_points("opentelemetry_traces_exporter", "none", "otlp"), "otlp"),
    _Rule("OTEL_METRICS_EXPORTER", _entry_points("opentelemetry_metrics_exporter", "none", "otlp"), "otlp"),
    _Rule("OTEL_LOGS_EXPORTER", _entry_points("opentelemetry_logs_exporter", "none", "otlp"), "otlp"),
    _Rule("OTEL_METRICS_EXEMPLAR_FILTER", _one_of("always_on", "always_off", "trace_based"), "trace_based"),
    _Rule("OTEL_PYTHON_ID_GENERATOR", _entry_points("opentelemetry_id_generator"), "random"),
    _Rule("OTEL_PROPAGATORS", _entry_points("opentelemetry_propagator", "none"), "tracecontext,baggage"),
    _Rule("OTEL_ATTRIBUTE_COUNT_LIMIT", _non_negative_int, _COUNT),
    _Rule("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", _non_negative_int, _UNLIMITED),
    _Rule("OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT", _non_negative_int, _COUNT),
    _Rule("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", _non_negative_int, _UNLIMITED),
    _Rule("OTEL_SPAN_EVENT_COUNT_LIMIT", _non_negative_int, _COUNT),
    _Rule("OTEL_SPAN_LINK_COUNT_LIMIT", _non_negative_int, _COUNT),
    _Rule("OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT", _non_negative_int, _COUNT),
    _Rule("OTEL_LINK_ATTRIBUTE_COUNT_LIMIT", _non_negative_int, _COUNT),
    _Rule("OTEL_LOGRECORD_ATTRIBUTE_COUNT_LIMIT", _non_negative_int, _COUNT),
    _Rule("OTEL_LOGRECORD_ATTRIBUTE_VALUE_LENGTH_LIMIT", _non_negative_int, _UNLIMITED),
)

# A batch larger than the queue is refused by the SDK as well.
_BATCH_WITHIN_QUEUE = (
    ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "OTEL_BSP_MAX_QUEUE_SIZE", 512, 2048),
    ("OTEL_BLRP_MAX_EXPORT_BATCH_SIZE", "OTEL_BLRP_MAX_QUEUE_SIZE", 512, 2048),
)


def _fall_back(environ: MutableMapping[str, str], variable: str, sdk_default: str, defaults: Mapping[str, str]) -> str:
    """Put ``variable`` back to its default; return that default in words."""
    if variable in defaults:
        environ[variable] = defaults[variable]
        return f"otel-monitor's default {defaults[variable]!r}"
    environ.pop(variable, None)
    return (
        f"the SDK's default ({sdk_default})"
        if sdk_default == _UNLIMITED or sdk_default.endswith("'s")
        else f"the SDK's default {sdk_default!r}"
    )


def _int_or(value: str | None, default: int) -> int:
    try:
        return int((value or "").strip())
    except ValueError:
        return default


def check_sdk_environment(
    environ: MutableMapping[str, str],
    *,
    strict: bool,
    problems: list[str] | None = None,
    defaults: Mapping[str, str] | None = None,
) -> None:
    """Report each standard variable the SDK would refuse, and reset it (strict: raise ``ConfigError``).

    ``defaults`` are the distro's (``otel_monitor.launcher.distro.DEFAULTS``): a
    variable it sets goes back to its value, any other is removed.
    """
    for rule in RULES:
        value = environ.get(rule.variable)
        if value is None or not value.strip():
            continue
        why = rule.check(value)
        if why is None:
            continue
        message = f"{rule.variable}={value!r} is invalid: {why}"
        if strict:
            report_problem(message, strict=True, problems=problems)
        fallback = _fall_back(environ, rule.variable, rule.sdk_default, defaults or {})
        report_problem(f"{message}; using {fallback}", strict=False, problems=problems)
    for batch_variable, queue_variable, batch_default, queue_default in _BATCH_WITHIN_QUEUE:
        batch, queue = (
            _int_or(environ.get(batch_variable), batch_default),
            _int_or(environ.get(queue_variable), queue_default),
        )
        if batch <= queue:
            continue
        message = f"{batch_variable}={batch} is invalid: it must not exceed {queue_variable} ({queue})"
        if strict:
            report_problem(message, strict=True, problems=problems)
        environ[batch_variable] = str(min(batch_default, queue))
        report_problem(f"{message}; using {environ[batch_variable]}", strict=False, problems=problems)


def check_before_sdk_import(defaults: Mapping[str, str], overrides: dict[str, object] | None = None) -> None:
    """:func:`check_sdk_environment` on ``os.environ``, run before anything imports the SDK.

    The SDK reads its span limits when ``opentelemetry.sdk.trace`` is first
    imported, and raises there on a bad one; so the distro and
    ``otel_monitor.configure`` call this first. Strict mode: one line, exit 2.
    """
    import os
    import sys

    from otel_monitor.config.settings import ConfigError, _strict_from

    try:
        check_sdk_environment(os.environ, strict=_strict_from(overrides or {}, os.environ), defaults=defaults)
    except ConfigError as exc:
        print(f"otel-monitor: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def exit_launcher(code: object) -> None:
    """End a process the launcher is starting: ``SystemExit`` raised from ``sitecustomize`` is a fatal error.

    Python reports an exception there as "Fatal Python error: init_import_site"
    with a traceback and status 1; the one line is already printed, so leave
    with its status directly.
    """
    import os
    import sys

    sys.stderr.flush()
    sys.stdout.flush()
    os._exit(code if isinstance(code, int) else 2)
