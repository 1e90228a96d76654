"""When an alert fires and resolves: the one table both alert evaluators read.

The Prometheus rules (:mod:`otel_monitor.alerting.rules`) and the console's
local alerts (:mod:`otel_monitor.console.alerts`) evaluate the same conditions
with the same timing, as Prometheus defines it:

- ``for``: the condition must hold at every evaluation for this long before the
  alert fires (until then it is *pending*; one evaluation without it and the
  pending alert is dropped);
- ``keep_firing_for``: once firing, the alert stays firing until the condition
  has been false for this long, so a signal hovering at its threshold does not
  page, resolve and page again (hysteresis);
- ``window``: the range the rate or ratio is computed over.

The error-rate alert's ``for`` comes from the SLO (``error_rate.for``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from otel_monitor.config.file import EMPTY, ConfigFile
from otel_monitor.config.settings import report_problem

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^(\d+)([smhd])$")

# Long enough that a ratio crossing its threshold for one evaluation, back and forth,
# stays one alert; short next to the 5-minute windows, so recovery is still reported soon.
KEEP_FIRING_FOR = "2m"
NO_HYSTERESIS = "0s"


def seconds(duration: str) -> int:
    """Seconds of a Prometheus duration such as ``3m``; ``ValueError`` otherwise."""
    match = _DURATION.match(duration)
    if not match:
        raise ValueError(f"not a duration like 3m: {duration!r}")
    return int(match.group(1)) * _UNITS[match.group(2)]


@dataclass(frozen=True)
class AlertTiming:
    """Pending period, hysteresis and window of one alert rule."""

    alert: str  # the Prometheus alert name
    severity: str
    for_: str  # "" when it comes from the SLO (error_rate.for)
    window: str
    keep_firing_for: str = KEEP_FIRING_FOR
    # A burn-rate rule's short window; its long one is ``window``. Several such rules share
    # one alert name, told apart by their windows (the rules' long_window label).
    short_window: str = ""

    @property
    def key(self) -> str:
        """The rule's key in :data:`TIMINGS`: the alert name, with ``/<long window>`` for a burn rate."""
        return f"{self.alert}/{self.window}" if self.short_window else self.alert


# The alerts both evaluators have, by Prometheus name (and long window, for a burn rate).
TIMINGS: dict[str, AlertTiming] = {
    t.key: t
    for t in (
        AlertTiming("OperationSuccessRateCritical", "critical", "5m", "5m"),
        AlertTiming("OperationSuccessRateLow", "warning", "5m", "5m"),
        AlertTiming("OperationErrorRateHigh", "critical", "", "5m"),
        AlertTiming("OperationLatencyCritical", "critical", "5m", "5m"),
        AlertTiming("OperationLatencyHigh", "warning", "5m", "5m"),
        AlertTiming("FallbackShareHigh", "warning", "10m", "10m"),
        AlertTiming("CacheHitRateLow", "warning", "10m", "10m"),
        AlertTiming("HealthCheckFailing", "critical", "2m", "5m"),
        AlertTiming("HealthCheckDegraded", "warning", "5m", "5m"),
        # A gauge: the window is Prometheus' lookback, the newest depth of the last 5 minutes.
        AlertTiming("QueueDepthHigh", "critical", "5m", "5m"),
        AlertTiming("UptimeBelowObjective", "warning", "5m", "30d"),
        # The burn rates of alerting.rules.BURN_RATES, paging (2m) or ticketing (15m). No
        # keep_firing_for: the short window already keeps a recovering burn from flapping.
        AlertTiming("UptimeBudgetBurn", "critical", "2m", "1h", NO_HYSTERESIS, short_window="5m"),
        AlertTiming("UptimeBudgetBurn", "critical", "2m", "6h", NO_HYSTERESIS, short_window="30m"),
        AlertTiming("UptimeBudgetBurn", "warning", "15m", "1d", NO_HYSTERESIS, short_window="2h"),
        AlertTiming("UptimeBudgetBurn", "warning", "15m", "3d", NO_HYSTERESIS, short_window="6h"),
    )
}


def pending_period(alert: str, error_rate_for: str) -> str:
    """The ``for`` of ``alert``; the error-rate alert takes the SLO's ``error_rate.for``."""
    timing = TIMINGS[alert]
    return timing.for_ or error_rate_for


# Where each alert's runbook lives: ``<base>/<AlertName>.md``.  A path relative
# to the repository by default: the project publishes no docs site, and the
# runbooks are meant to be copied and edited with the service, so the only
# link true in every checkout is the relative one.  A team sets
# ``alerting.runbook_base_url`` to its wiki or its repository's web view to make
# it a link that opens from Slack, PagerDuty or the console.
DEFAULT_RUNBOOK_BASE_URL = "docs/runbooks"


def runbook_url(alertname: str, base: str = DEFAULT_RUNBOOK_BASE_URL) -> str:
    """The ``runbook_url`` annotation of ``alertname``."""
    return f"{base.rstrip('/')}/{alertname}.md"


def load_runbook_base(config: ConfigFile = EMPTY, *, strict: bool = False, problems: list[str] | None = None) -> str:
    """``alerting.runbook_base_url`` of the config file, else the default; a bad value is reported."""
    section = config.section("alerting")
    if section is None:
        return DEFAULT_RUNBOOK_BASE_URL
    if not isinstance(section, dict) or set(section) - {"runbook_base_url"}:
        report_problem(
            f"{config.where('alerting')}: 'alerting' takes only runbook_base_url", strict=strict, problems=problems
        )
        return DEFAULT_RUNBOOK_BASE_URL
    base = section.get("runbook_base_url", DEFAULT_RUNBOOK_BASE_URL)
    scheme = (
        base.split("/")[0].partition(":")[0].lower() if isinstance(base, str) and ":" in base.split("/")[0] else None
    )
    if (
        not isinstance(base, str)
        or not base.strip()
        or any(c.isspace() or c in "{}<>\"'" for c in base)
        or scheme not in (None, "http", "https")
    ):
        report_problem(
            f"{config.where('alerting', 'runbook_base_url')}: runbook_base_url must be an http(s) URL "
            f"or a relative path, without spaces, quotes or braces, got {base!r}",
            strict=strict,
            problems=problems,
        )
        return DEFAULT_RUNBOOK_BASE_URL
    return base.strip()
