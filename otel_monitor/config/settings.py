"""The one table of otel-monitor settings, and the one function that resolves them.

Each setting is declared once: environment variable, type, default, one-line
doc.  :func:`resolve` looks a value up in this order: an argument passed to
``otel_monitor.configure(...)``, the environment, the ``settings:`` section of
the ``OTEL_MONITOR_CONFIG`` file, the default.  A bad value is reported in one
line that names the variable (or the file and line) and what was expected, and
the default is used instead; with ``OTEL_MONITOR_STRICT=true`` it raises
:class:`ConfigError` so the process exits non-zero.

The README's settings table is generated from :data:`SETTINGS`
(``otel-monitor config --markdown``) and a test checks they agree.
"""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

_log = logging.getLogger("otel_monitor")


class ConfigError(ValueError):
    """A setting or the config file is invalid (raised only in strict mode)."""


# --- value parsers: each takes the raw string and returns the value or raises
#     ValueError with the expectation in words.


def parse_bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("true", "1", "yes", "on"):
        return True
    if value in ("false", "0", "no", "off", ""):
        return False
    raise ValueError("expected true or false")


def _number(kind: type, low: float | None, high: float | None) -> Callable[[str], Any]:
    def parse(raw: str) -> Any:
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ValueError(f"expected {'an integer' if kind is int else 'a number'}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError("expected a finite number")
        if low is not None and value < low:
            raise ValueError(f"expected at least {low}")
        if high is not None and value > high:
            raise ValueError(f"expected at most {high}")
        return value

    parse.__doc__ = f"{kind.__name__} in [{low}, {high}]"
    return parse


def integer(low: int | None = None, high: int | None = None) -> Callable[[str], int]:
    return _number(int, low, high)


def number(low: float | None = None, high: float | None = None) -> Callable[[str], float]:
    return _number(float, low, high)


def text(raw: str) -> str:
    return raw.strip()


def secret(raw: str) -> str:
    # Not stripped: a key is used byte for byte.
    if not raw:
        raise ValueError("expected a non-empty value")
    return raw


def webhook_url(raw: str) -> str:
    url = raw.strip()
    if not url.startswith(("http://", "https://")):
        raise ValueError("expected an http:// or https:// URL")
    return url


def csv(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def regex_list(raw: str) -> tuple[str, ...]:
    items = csv(raw)
    for item in items:
        try:
            re.compile(item)
        except re.error as exc:
            raise ValueError(f"invalid regular expression {item!r}: {exc}") from None
    return items


def url_path(raw: str) -> str:
    value = raw.strip()
    if not re.fullmatch(r"/[A-Za-z0-9/_.~-]*", value) or "//" in value or value == "/":
        raise ValueError("expected a URL path such as /monitoring (letters, digits, / _ . ~ -)")
    return value.rstrip("/")


def choice(*options: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.strip().lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value

    return parse


def log_level(raw: str) -> int:
    value = raw.strip().upper()
    level = logging.getLevelName(value)
    if not isinstance(level, int):
        raise ValueError("expected a logging level: DEBUG, INFO, WARNING, ERROR or CRITICAL")
    return level


@dataclass(frozen=True)
class Setting:
    """One setting: its variable, how to parse it, its default and what it does."""

    env: str
    parse: Callable[[str], Any]
    default: str | None
    doc: str
    secret: bool = False

    @property
    def key(self) -> str:
        """The keyword for ``configure(...)`` and the config file: ``OTEL_MONITOR_FOO`` -> ``foo``."""
        return self.env.removeprefix("OTEL_MONITOR_").lower()


SETTINGS: tuple[Setting, ...] = (
    Setting(
        "OTEL_MONITOR_CONFIG", text, None, "Path of the YAML file with operation, error, funnel, SLO and health rules."
    ),
    Setting(
        "OTEL_MONITOR_STRICT",
        parse_bool,
        "false",
        "Fail fast: a bad setting or config file stops the process instead of falling back to defaults.",
    ),
    Setting(
        "OTEL_MONITOR_ENVIRONMENT",
        text,
        None,
        "Sets the deployment.environment.name resource attribute (e.g. production, staging).",
    ),
    Setting(
        "OTEL_MONITOR_EXCLUDED_URLS",
        regex_list,
        "/health,/health/detailed,/healthz,/readyz,/livez,/metrics,/favicon.ico",
        "Comma-separated URL path patterns (regular expressions matched against the whole path: `/static/.*` "
        "for a prefix) that produce no traces or operation metrics.",
    ),
    Setting(
        "OTEL_MONITOR_OPERATION_SPANS",
        parse_bool,
        "false",
        "Also trace FastAPI's internal steps (dependencies, endpoint, serialization) as child spans.",
    ),
    Setting(
        "OTEL_MONITOR_HTTP_METRICS",
        parse_bool,
        "false",
        "Also record FastAPI's http.server.request.duration and http.server.active_requests; "
        "monitor.operation.duration already times every request, by operation.",
    ),
    Setting("OTEL_MONITOR_LOG_LEVEL", log_level, "INFO", "Lowest level of stdlib log records sent as OTLP logs."),
    Setting(
        "OTEL_MONITOR_LOG_CORRELATION",
        parse_bool,
        "true",
        "Add trace_id and span_id to stdlib log records (for formatters) as well as to OTLP logs.",
    ),
    Setting(
        "OTEL_MONITOR_KEEP_ERRORS",
        parse_bool,
        "true",
        "Export a failed request's local spans even when its trace was not sampled.",
    ),
    Setting(
        "OTEL_MONITOR_CLIENT_ERRORS_FAIL",
        parse_bool,
        "false",
        "Count a server's 4xx answers (404, 401, 422...) as failures: the exported span gets an error status and "
        "error.type, monitor.operation.duration counts the call as failed, so success rates, error groups, kept "
        "error traces and the generated alert rules all count it (false: a 4xx is the caller's mistake, a "
        "success). `otel-monitor console --client-errors-fail` applies the same rule to plain OpenTelemetry SDKs.",
    ),
    Setting(
        "OTEL_MONITOR_SLOW_THRESHOLD_MS",
        number(0, 3_600_000),
        "2000",
        "Export a request's local spans when it took longer than this, even when its trace was not sampled "
        "(0 disables).",
    ),
    Setting(
        "OTEL_MONITOR_CARDINALITY_LIMIT",
        integer(1, 1_000_000),
        "2000",
        "Attribute sets kept per instrument of ours; further ones go to the otel.metric.overflow=true series.",
    ),
    Setting(
        "OTEL_MONITOR_USER_ID_KEY",
        secret,
        None,
        "HMAC-SHA256 key used to pseudonymise user ids (enduser.pseudo.id). Required for journey milestones "
        "with user ids.",
        secret=True,
    ),
    Setting(
        "OTEL_MONITOR_JOURNEY_STORE",
        text,
        None,
        "SQLAlchemy URL of a store recording the first time each pseudonymous user reached each journey step.",
    ),
    Setting(
        "OTEL_MONITOR_REDACT",
        parse_bool,
        "true",
        "Scrub secrets and personal data from spans, events, logs and metric attributes before export.",
    ),
    Setting(
        "OTEL_MONITOR_REDACT_PATTERNS",
        regex_list,
        "",
        "Extra comma-separated regular expressions whose matches are scrubbed.",
    ),
    Setting("OTEL_MONITOR_SAFE_KEYS", csv, "", "Comma-separated attribute keys that are never scrubbed."),
    Setting(
        "OTEL_MONITOR_RUNTIME_METRICS",
        parse_bool,
        "true",
        "Report process CPU, memory, GC, thread and file-descriptor metrics.",
    ),
    Setting(
        "OTEL_MONITOR_LEAN_SPANS",
        parse_bool,
        "true",
        "Record spans with otel-monitor's span type: the SDK's, with attributes checked once on the way to export "
        "instead of on every write, and no lock per write (false: the SDK's own span type).",
    ),
    Setting(
        "OTEL_MONITOR_LEAN_OTLP",
        parse_bool,
        "true",
        "Export OTLP/HTTP through otel-monitor's encoder: the SDK's OTLP/HTTP exporters' settings, HTTP client, "
        "retries and transport, without loading the protobuf runtime (false: the SDK's own exporters).",
    ),
    Setting(
        "OTEL_MONITOR_LEAN_REQUESTS",
        parse_bool,
        "true",
        "Serve FastAPI's native request telemetry through otel-monitor's shorter per-request path: the same span, "
        "metrics and logs, with provider checks kept and one context attached per request (false: FastAPI's own "
        "path).",
    ),
    Setting(
        "OTEL_MONITOR_LEAN_QUERIES",
        parse_bool,
        "true",
        "Make SQLAlchemy query spans with their name and attributes worked out once per statement, from the "
        "engine's dialect methods, and hold an unsampled request's queries as small records until it is kept "
        "(false: the contrib instrumentation's own query spans).",
    ),
    Setting(
        "OTEL_MONITOR_DIRECT_HISTOGRAMS",
        parse_bool,
        "true",
        "Record monitor.operation.duration straight into the SDK's aggregation once an attribute set is known "
        "(false: every point through the SDK's Histogram.record).",
    ),
    Setting(
        "OTEL_MONITOR_LEAN_TRACEBACKS",
        parse_bool,
        "true",
        "Format exceptions' tracebacks for spans and log records once per error and once per error site: the "
        "same text as the traceback module's, shared by the log record and the span's exception event (false: the "
        "SDK formats each one itself).",
    ),
    Setting(
        "OTEL_MONITOR_GC_FREEZE",
        parse_bool,
        "true",
        "Under opentelemetry-instrument, move the objects that exist once otel-monitor has set up (the SDK and its "
        "exporters, ours, the modules loaded before the app) out of the garbage collector's scans (gc.freeze).",
    ),
    Setting(
        "OTEL_MONITOR_SHUTDOWN_TIMEOUT",
        number(0, 600),
        "5",
        "Seconds that flushing telemetry may take at process exit, even when the receiver is down.",
    ),
    Setting(
        "OTEL_MONITOR_EXPORT_WARNING_INTERVAL",
        number(0, 86_400),
        "30",
        "At most one export-failure warning per this many seconds.",
    ),
    Setting(
        "OTEL_MONITOR_CONSOLE_TOKEN",
        secret,
        None,
        "Token the local console requires (Bearer header or cookie) on UI, API and OTLP; needed to listen "
        "beyond loopback.",
        secret=True,
    ),
    Setting(
        "OTEL_MONITOR_CONSOLE_STALE_AFTER",
        number(1, 86_400),
        "180",
        "Seconds without any data (spans, metrics or logs) after which the console shows a service or instance "
        "as stale (no data), drops that instance's health checks, and `otel-monitor status` fails, for a sender "
        "whose metric export interval the console has not learnt yet (see OTEL_MONITOR_CONSOLE_STALE_INTERVALS); "
        "the default is three of the SDKs' default 60 s metric export intervals.",
    ),
    Setting(
        "OTEL_MONITOR_CONSOLE_STALE_INTERVALS",
        number(0, 1000),
        "3",
        "Number of its own metric export intervals a sender may stay silent before the console shows it as "
        "stale; the console learns each instance's interval from the times of its metric exports (after three "
        "exports). 0: every sender gets OTEL_MONITOR_CONSOLE_STALE_AFTER (`otel-monitor console "
        "--stale-intervals`).",
    ),
    Setting(
        "OTEL_MONITOR_CONSOLE_ALERT_WEBHOOK",
        webhook_url,
        None,
        "URL the local console POSTs each alert that fires or resolves to, in Alertmanager's webhook format "
        "(a chat or paging hook; `otel-monitor console --alert-webhook`). Kept out of reports: such URLs "
        "often carry a token.",
        secret=True,
    ),
    Setting(
        "OTEL_MONITOR_CONSOLE_MAX_SERVICES",
        integer(1, 10_000_000),
        "10000",
        "Services (service.name) the local console keeps; past it, the one heard from least recently is dropped with "
        "everything kept of it (figures, checks, instances, error groups) and counted in /api/services "
        "(`otel-monitor console --max-services`).",
    ),
    Setting(
        "OTEL_MONITOR_CONSOLE_MAX_INSTANCES",
        integer(1, 10_000_000),
        "10000",
        "Instances (service.name and service.instance.id) the local console keeps; past it, the one heard from least "
        "recently is dropped with its check states and usage, and counted (`otel-monitor console --max-instances`).",
    ),
    Setting(
        "OTEL_MONITOR_HEALTH_INTERVAL",
        number(0.1, 86_400),
        "15",
        "Seconds between runs of the health checks (in the background, never on a request).",
    ),
    Setting(
        "OTEL_MONITOR_HEALTH_ENDPOINTS",
        parse_bool,
        "false",
        "Add /health and /health/detailed to every FastAPI app (also `endpoints: true` under `health:` in the "
        "config file).",
    ),
    Setting(
        "OTEL_MONITOR_HEALTH_TOKEN",
        secret,
        None,
        "Token required (Authorization: Bearer or ?token=) to read /health/detailed, which reveals the "
        "service's dependencies.",
        secret=True,
    ),
    Setting(
        "OTEL_MONITOR_STATUS_PATH",
        url_path,
        None,
        "Serve a status page at this path of every FastAPI app (e.g. `/monitoring`): per-operation calls, "
        "errors and latency from the metrics the SDK exports, health and active alerts. Off when unset; "
        "protected by OTEL_MONITOR_HEALTH_TOKEN as /health/detailed is, and never traced.",
    ),
)

BY_ENV: dict[str, Setting] = {s.env: s for s in SETTINGS}
BY_KEY: dict[str, Setting] = {s.key: s for s in SETTINGS}


@dataclass(frozen=True)
class Resolved:
    """A setting's effective value and where it came from."""

    setting: Setting
    value: Any
    source: str  # "argument", "environment", "<file>:<line>", "default"
    raw: str | None = None


@dataclass
class Settings:
    """Every setting, resolved.  Attribute access by key: ``settings.cardinality_limit``."""

    resolved: dict[str, Resolved] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def __getattr__(self, key: str) -> Any:
        try:
            return self.resolved[key].value
        except KeyError:
            raise AttributeError(key) from None

    def source(self, key: str) -> str:
        return self.resolved[key].source


def report_problem(message: str, *, strict: bool, problems: list[str] | None = None) -> None:
    """Log one clear line about bad configuration, or raise in strict mode."""
    if problems is not None:
        problems.append(message)
    if strict:
        raise ConfigError(message)
    _log.warning("otel-monitor: %s", message)


def _as_text(raw: Any) -> str:
    if isinstance(raw, str):
        return raw
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (list, tuple)):
        return ",".join(map(str, raw))
    return str(raw)


def _strict_from(overrides: Mapping[str, Any], environ: Mapping[str, str]) -> bool:
    if "strict" in overrides:
        return bool(overrides["strict"])
    try:
        return parse_bool(environ.get("OTEL_MONITOR_STRICT", "false"))
    except ValueError:
        return False


def resolve(
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    file_settings: Mapping[str, tuple[Any, str]] | None = None,
) -> Settings:
    """Resolve every setting: argument, environment, config file, default.

    ``file_settings`` maps a setting key to ``(value, "file:line")`` from the
    config file's ``settings:`` section.  Unknown argument names are errors.
    """
    overrides = dict(overrides or {})
    environ = os.environ if environ is None else environ
    file_settings = file_settings or {}
    strict = _strict_from(overrides, environ)
    result = Settings()
    for name in overrides:
        if name not in BY_KEY:
            report_problem(
                f"configure() got an unknown setting {name!r}; known: {', '.join(sorted(BY_KEY))}",
                strict=strict,
                problems=result.problems,
            )
    for setting in SETTINGS:
        candidates: list[tuple[str, Any]] = []
        if setting.key in overrides:
            candidates.append(("argument", overrides[setting.key]))
        if setting.env in environ:
            candidates.append(("environment", environ[setting.env]))
        if setting.key in file_settings:
            value, where = file_settings[setting.key]
            candidates.append((where, value))
        chosen: Resolved | None = None
        for source, raw in candidates:
            label = (
                setting.env
                if source == "environment"
                else (f"configure({setting.key}=...)" if source == "argument" else f"{source}: {setting.key}")
            )
            # Code and YAML may give typed values; validate them through the parser.
            raw = _as_text(raw)
            try:
                chosen = Resolved(setting, setting.parse(raw), source, raw)
                break
            except ValueError as exc:
                shown = "<hidden>" if setting.secret else repr(raw)
                report_problem(
                    f"{label}={shown} is invalid: {exc}; using the default"
                    + (f" ({setting.default})" if setting.default not in (None, "") else ""),
                    strict=strict,
                    problems=result.problems,
                )
        if chosen is None:
            value = setting.parse(setting.default) if setting.default is not None else None
            chosen = Resolved(setting, value, "default", setting.default)
        result.resolved[setting.key] = chosen
    status_path = result.resolved["status_path"].value
    excluded = result.resolved["excluded_urls"]
    if status_path and re.escape(status_path) not in excluded.value:
        # The status page is monitoring itself: never traced nor counted as an operation.
        result.resolved["excluded_urls"] = Resolved(
            excluded.setting, (*excluded.value, re.escape(status_path)), excluded.source, excluded.raw
        )
    return result


def markdown_table() -> str:
    """The README's settings table, generated from :data:`SETTINGS`."""
    lines = ["| Variable | Default | What it does |", "|---|---|---|"]
    for s in SETTINGS:
        default = "" if s.default in (None, "") else f"`{s.default}`"
        lines.append(f"| `{s.env}` | {default} | {s.doc} |")
    return "\n".join(lines)
