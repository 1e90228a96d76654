"""SLO thresholds per operation: the one source of truth for alerts and health.

The ``slos:`` section of the config file sets thresholds; the Prometheus rules
(:mod:`otel_monitor.alerting.rules`), the console's health colours and its local alerts
all read them from here.  Defaults follow common production practice::

    slos:
      defaults:
        objective: 0.99              # availability SLO, for burn-rate alerts
        success_rate: {warning: 0.95, critical: 0.90}
        latency: {percentile: 0.95, warning: 0.5, critical: 2.0}   # seconds
        error_rate: {critical: 0.05, for: 3m}
        cache_hit_rate: {warning: 0.20}
        fallback_share: {warning: 0.15}
      operations:
        checkout:
          objective: 0.995
          latency: {warning: 1.0, critical: 2.5}
        outfit_generation:
          latency: {warning: 5, critical: 10}
      buckets: [...]                 # optional explicit histogram buckets (seconds)

Latency thresholds are histogram bucket boundaries: by default the buckets are
:data:`DEFAULT_BUCKETS` plus every threshold; with explicit ``buckets`` a
threshold that is not one of them is an error, because a percentile alert on a
value between buckets is an interpolation, not a measurement.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field, replace
from itertools import pairwise
from typing import Any

from otel_monitor.config.file import EMPTY, ConfigFile
from otel_monitor.config.settings import report_problem

# The Renard R20 series (ISO 3): twenty preferred numbers per decade, each at
# most 1.143 times the one before, so a percentile interpolated inside a bucket
# is within PERCENTILE_RELATIVE_ERROR of the true value.  Decimal numbers keep
# Prometheus' ``le`` labels readable; 0.5, 1, 2, 2.5, 5 and 10 are among them.
_R20: tuple[str, ...] = (
    "1",
    "1.12",
    "1.25",
    "1.4",
    "1.6",
    "1.8",
    "2",
    "2.24",
    "2.5",
    "2.8",
    "3.15",
    "3.55",
    "4",
    "4.5",
    "5",
    "5.6",
    "6.3",
    "7.1",
    "8",
    "9",
)
_SMALLEST_EXPONENT = -5  # 10 µs: an in-process database call still lands in a narrow bucket
_LARGEST = 60.0  # a minute; slower calls share the overflow bucket, bounded by the observed max


def _preferred_numbers() -> tuple[float, ...]:
    # float("1.12e-5") is the double nearest the decimal, so each bound prints as written.
    out = [float(f"{m}e{e}") for e in range(_SMALLEST_EXPONENT, 2) for m in _R20]
    return (*(b for b in out if b < _LARGEST), _LARGEST)


# Seconds: 10 µs to 60 s, every SLO threshold added on top (see SLOs.buckets).
DEFAULT_BUCKETS: tuple[float, ...] = _preferred_numbers()

# The largest ratio between neighbouring default bounds, minus one: a percentile
# from a histogram with these buckets (the console clamps it to the observed
# minimum and maximum) is within this fraction of the true percentile.
PERCENTILE_RELATIVE_ERROR: float = max(b / a for a, b in pairwise(DEFAULT_BUCKETS)) - 1

_DURATION = re.compile(r"^(\d+)(s|m|h|d)$")


@dataclass(frozen=True)
class Thresholds:
    """Thresholds of one operation (or the defaults)."""

    objective: float = 0.99
    success_warning: float = 0.95
    success_critical: float = 0.90
    latency_percentile: float = 0.95
    latency_warning: float = 0.5
    latency_critical: float = 2.0
    error_rate_critical: float = 0.05
    error_rate_for: str = "3m"
    cache_hit_warning: float = 0.20
    fallback_warning: float = 0.15

    def success_state(self, success_rate: float) -> str:
        """``ok``, ``warning`` or ``critical`` for an observed success rate."""
        if success_rate < self.success_critical:
            return "critical"
        if success_rate < self.success_warning:
            return "warning"
        return "ok"

    def latency_state(self, latency_s: float) -> str:
        """``ok``, ``warning`` or ``critical`` for the observed latency percentile."""
        if latency_s > self.latency_critical:
            return "critical"
        if latency_s > self.latency_warning:
            return "warning"
        return "ok"


@dataclass(frozen=True)
class SLOs:
    """Default thresholds, per-operation overrides and histogram buckets."""

    defaults: Thresholds = field(default_factory=Thresholds)
    operations: dict[str, Thresholds] = field(default_factory=dict)
    explicit_buckets: tuple[float, ...] | None = None

    def for_operation(self, operation: str) -> Thresholds:
        return self.operations.get(operation, self.defaults)

    def latency_thresholds(self) -> set[float]:
        every = [self.defaults, *self.operations.values()]
        return {t.latency_warning for t in every} | {t.latency_critical for t in every}

    @property
    def buckets(self) -> tuple[float, ...]:
        """Histogram boundaries for ``monitor.operation.duration``."""
        if self.explicit_buckets is not None:
            return self.explicit_buckets
        return tuple(sorted(set(DEFAULT_BUCKETS) | self.latency_thresholds()))

    def missing_buckets(self) -> list[float]:
        """Latency thresholds that are not exact bucket boundaries."""
        return sorted(t for t in self.latency_thresholds() if t not in set(self.buckets))


def _fraction(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ValueError(f"{where}: {name} must be a number between 0 and 1, got {value!r}")
    return float(value)


def _seconds(value: Any, where: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"{where}: {name} must be a positive number of seconds, got {value!r}")
    return float(value)


_KNOWN = {"objective", "success_rate", "latency", "error_rate", "cache_hit_rate", "fallback_share"}


def _thresholds(raw: Any, base: Thresholds, config: ConfigFile, path: tuple[str, ...]) -> Thresholds:
    where = config.where(*path)
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping of thresholds")
    for key in raw:
        if key not in _KNOWN:
            raise ValueError(
                f"{config.where(*path, key)}: unknown SLO key {key!r}; expected one of {', '.join(sorted(_KNOWN))}"
            )
    t = base
    if "objective" in raw:
        t = replace(t, objective=_fraction(raw["objective"], config.where(*path, "objective"), "objective"))
        if not 0 < t.objective < 1:
            raise ValueError(f"{config.where(*path, 'objective')}: objective must be between 0 and 1 exclusive")

    def sub(key: str) -> dict[str, Any]:
        value = raw.get(key, {})
        if not isinstance(value, dict):
            raise ValueError(f"{config.where(*path, key)}: {key} must be a mapping")
        return value

    def at(*keys: str) -> str:
        return config.where(*path, *keys)

    sr = sub("success_rate")
    if "warning" in sr:
        t = replace(t, success_warning=_fraction(sr["warning"], at("success_rate", "warning"), "success_rate.warning"))
    if "critical" in sr:
        t = replace(
            t, success_critical=_fraction(sr["critical"], at("success_rate", "critical"), "success_rate.critical")
        )
    if t.success_critical > t.success_warning:
        raise ValueError(
            f"{at('success_rate')}: success_rate.critical ({t.success_critical}) "
            f"must not exceed warning ({t.success_warning})"
        )
    lat = sub("latency")
    if "percentile" in lat:
        p = _fraction(lat["percentile"], at("latency", "percentile"), "latency.percentile")
        if not 0 < p < 1:
            raise ValueError(f"{at('latency', 'percentile')}: latency.percentile must be between 0 and 1 exclusive")
        t = replace(t, latency_percentile=p)
    if "warning" in lat:
        t = replace(t, latency_warning=_seconds(lat["warning"], at("latency", "warning"), "latency.warning"))
    if "critical" in lat:
        t = replace(t, latency_critical=_seconds(lat["critical"], at("latency", "critical"), "latency.critical"))
    if t.latency_critical < t.latency_warning:
        raise ValueError(
            f"{at('latency')}: latency.critical ({t.latency_critical}) must not be below warning ({t.latency_warning})"
        )
    er = sub("error_rate")
    if "critical" in er:
        t = replace(
            t, error_rate_critical=_fraction(er["critical"], at("error_rate", "critical"), "error_rate.critical")
        )
    if "for" in er:
        if not isinstance(er["for"], str) or not _DURATION.match(er["for"]):
            raise ValueError(f"{at('error_rate', 'for')}: error_rate.for must be a duration like 3m, got {er['for']!r}")
        t = replace(t, error_rate_for=er["for"])
    ch = sub("cache_hit_rate")
    if "warning" in ch:
        t = replace(
            t, cache_hit_warning=_fraction(ch["warning"], at("cache_hit_rate", "warning"), "cache_hit_rate.warning")
        )
    fb = sub("fallback_share")
    if "warning" in fb:
        t = replace(
            t, fallback_warning=_fraction(fb["warning"], at("fallback_share", "warning"), "fallback_share.warning")
        )
    return t


def load_slos(config: ConfigFile = EMPTY) -> SLOs:
    """Read the ``slos:`` section; raise ``ValueError`` naming file and line."""
    raw = config.section("slos")
    if raw is None:
        return SLOs()
    if not isinstance(raw, dict):
        raise ValueError(f"{config.where('slos')}: 'slos' must be a mapping with defaults, operations, buckets")
    for key in raw:
        if key not in ("defaults", "operations", "buckets"):
            raise ValueError(
                f"{config.where('slos', key)}: unknown key {key!r} under slos; expected defaults, operations or buckets"
            )
    defaults = _thresholds(raw.get("defaults") or {}, Thresholds(), config, ("slos", "defaults"))
    operations: dict[str, Thresholds] = {}
    ops = raw.get("operations") or {}
    if not isinstance(ops, dict):
        raise ValueError(
            f"{config.where('slos', 'operations')}: slos.operations must map operation names to thresholds"
        )
    for name, value in ops.items():
        operations[str(name)] = _thresholds(value or {}, defaults, config, ("slos", "operations", name))
    buckets = None
    if "buckets" in raw:
        b = raw["buckets"]
        where = config.where("slos", "buckets")
        if not isinstance(b, list) or not b:
            raise ValueError(f"{where}: slos.buckets must be a non-empty list of seconds")
        values = [_seconds(v, where, "bucket") for v in b]
        if values != sorted(set(values)):
            raise ValueError(f"{where}: slos.buckets must be strictly increasing")
        buckets = tuple(values)
    return SLOs(defaults=defaults, operations=operations, explicit_buckets=buckets)


def load_slos_or_defaults(
    config: ConfigFile = EMPTY, *, strict: bool = False, problems: list[str] | None = None
) -> SLOs:
    """:func:`load_slos` for the running app: a bad ``slos:`` section is reported
    (raised in strict mode) and the default thresholds and buckets are used, so
    one impossible threshold never costs the app its other monitoring."""
    try:
        return load_slos(config)
    except ValueError as exc:
        report_problem(f"{exc}; using the default SLOs", strict=strict, problems=problems)
        return SLOs()
