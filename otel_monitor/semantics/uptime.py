"""Uptime objectives: the ``uptime:`` section of the config file.

External URLs are probed from outside the app (``otel-monitor probe``, or the
collector's ``httpcheck`` receiver: both report ``httpcheck.status``), and the
app's own health checks report ``monitor.health.status``. Each gets an uptime
objective over 30 days, alerted on by burn rate like the SLOs::

    uptime:
      objective: 0.999            # default for every probe and health check
      interval: 30s               # how often each URL is probed
      timeout: 5s
      probes:
        - url: https://shop.example.com/
        - url: https://shop.example.com/api/health
          objective: 0.9995
          method: HEAD
      health_checks:              # per check name; the others get the default objective
        database: 0.9999

A probe is up when it answers 2xx within the timeout. A health check is up
while it is not down (degraded still serves).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from otel_monitor.config.file import EMPTY, ConfigFile
from otel_monitor.config.settings import report_problem

# The window an uptime objective is stated over.
OBJECTIVE_WINDOW = "30d"
DEFAULT_OBJECTIVE = 0.999
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m)$")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0}
_CHECK_NAME = re.compile(r"^[A-Za-z0-9_.:-]{1,100}$")
METHODS = ("GET", "HEAD", "POST", "OPTIONS")
_SECTION_KEYS = {"objective", "interval", "timeout", "probes", "health_checks"}
_PROBE_KEYS = {"url", "objective", "method"}


@dataclass(frozen=True)
class Probe:
    """One URL probed from outside."""

    url: str
    method: str = "GET"
    objective: float = DEFAULT_OBJECTIVE


@dataclass(frozen=True)
class Uptime:
    """The ``uptime:`` section: probes, health-check objectives, and how often to probe."""

    objective: float = DEFAULT_OBJECTIVE
    interval: float = 30.0
    timeout: float = 5.0
    probes: tuple[Probe, ...] = ()
    health_checks: dict[str, float] = field(default_factory=dict)
    configured: bool = False

    def health_objective(self, check: str) -> float:
        """The uptime objective of a health check (its own, or the default)."""
        return self.health_checks.get(check, self.objective)


def _objective(config: ConfigFile, where: tuple[str | int, ...], value: object, problems: list[str]) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value < 1:
        problems.append(f"{config.where(*where)}: an uptime objective is a fraction such as 0.999, got {value!r}")
        return None
    return float(value)


def _seconds(config: ConfigFile, where: tuple[str | int, ...], value: object, problems: list[str]) -> float | None:
    match = _DURATION.match(value) if isinstance(value, str) else None
    seconds = float(match.group(1)) * _SECONDS[match.group(2)] if match else 0.0
    if not match or not 0.1 <= seconds <= 3600:
        problems.append(f"{config.where(*where)}: a duration between 100ms and 60m such as 30s, got {value!r}")
        return None
    return seconds


def _probe(config: ConfigFile, index: int, raw: object, default: float, problems: list[str]) -> Probe | None:
    where = ("uptime", "probes", index)
    if isinstance(raw, str):
        raw = {"url": raw}
    if not isinstance(raw, dict):
        problems.append(f"{config.where(*where)}: a probe is a URL or {{url: ..., objective: ..., method: ...}}")
        return None
    unknown = sorted(set(raw) - _PROBE_KEYS)
    if unknown:
        problems.append(f"{config.where(*where, unknown[0])}: unknown key {unknown[0]!r}")
        return None
    url = raw.get("url")
    parts = urlsplit(url) if isinstance(url, str) else None
    if (
        not isinstance(url, str)
        or parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() for c in url)
    ):
        problems.append(f"{config.where(*where, 'url')}: an http:// or https:// URL with a host, got {url!r}")
        return None
    if parts.username is not None or parts.password is not None:
        # The URL is a metric attribute (http.url): a password in it would be exported with every probe.
        problems.append(f"{config.where(*where, 'url')}: a probe URL must not carry a user name or password")
        return None
    method = str(raw.get("method", "GET")).upper()
    if method not in METHODS:
        problems.append(f"{config.where(*where, 'method')}: method is one of {', '.join(METHODS)}, got {method!r}")
        return None
    objective = _objective(config, (*where, "objective"), raw.get("objective", default), problems)
    if objective is None:
        return None
    return Probe(url, method, objective)


def _parse(config: ConfigFile, section: object, problems: list[str]) -> Uptime:
    if not isinstance(section, dict):
        problems.append(f"{config.where('uptime')}: 'uptime' is a mapping (objective, interval, probes, ...)")
        return Uptime()
    unknown = sorted(set(section) - _SECTION_KEYS)
    for key in unknown:
        problems.append(f"{config.where('uptime', key)}: unknown key {key!r}")
    objective = _objective(config, ("uptime", "objective"), section.get("objective", DEFAULT_OBJECTIVE), problems)
    objective = DEFAULT_OBJECTIVE if objective is None else objective
    interval = _seconds(config, ("uptime", "interval"), section.get("interval", "30s"), problems) or 30.0
    timeout = _seconds(config, ("uptime", "timeout"), section.get("timeout", "5s"), problems) or 5.0
    probes: list[Probe] = []
    raw_probes = section.get("probes") or []
    if not isinstance(raw_probes, list):
        problems.append(f"{config.where('uptime', 'probes')}: 'probes' is a list of URLs")
        raw_probes = []
    seen: set[tuple[str, str]] = set()
    for index, raw in enumerate(raw_probes):
        probe = _probe(config, index, raw, objective, problems)
        if probe is None:
            continue
        if (probe.url, probe.method) in seen:
            problems.append(f"{config.where('uptime', 'probes', index)}: {probe.method} {probe.url} is listed twice")
            continue
        seen.add((probe.url, probe.method))
        probes.append(probe)
    checks: dict[str, float] = {}
    raw_checks = section.get("health_checks") or {}
    if not isinstance(raw_checks, dict):
        problems.append(f"{config.where('uptime', 'health_checks')}: 'health_checks' maps check names to objectives")
        raw_checks = {}
    for name, value in raw_checks.items():
        if not _CHECK_NAME.match(str(name)):
            problems.append(f"{config.where('uptime', 'health_checks', name)}: {name!r} is not a check name")
            continue
        check_objective = _objective(config, ("uptime", "health_checks", name), value, problems)
        if check_objective is not None:
            checks[str(name)] = check_objective
    return Uptime(objective, interval, timeout, tuple(probes), checks, configured=True)


def load_uptime(config: ConfigFile = EMPTY, *, strict: bool = False, problems: list[str] | None = None) -> Uptime:
    """The ``uptime:`` section; a bad entry is reported with its file and line and skipped."""
    section = config.section("uptime")
    if section is None:
        return Uptime()
    found: list[str] = []
    uptime = _parse(config, section, found)
    for problem in found:
        report_problem(problem, strict=strict, problems=problems)
    return uptime
