"""Alerts evaluated locally, as Prometheus evaluates the generated rules.

The conditions are those of the rules generated from the same ``slos:``
section (:mod:`otel_monitor.alerting.rules`), and so is their timing
(:mod:`otel_monitor.semantics.alert_timing`): a condition that starts to hold
makes a *pending* alert, which fires once the condition has held at every
evaluation for the rule's ``for``; a firing alert resolves once the condition
has been false for ``keep_firing_for``.  Each Prometheus rule has its own state
(``OperationSuccessRateLow`` and ``OperationSuccessRateCritical`` are two
alerts there too); the console shows one alert per kind and subject, with the
severity and threshold of the most severe rule firing, and its ``since`` is
when the first of them fired.

Rates and ratios are computed over the store's minutes: a 5-minute window is
the current minute and the four before it.  Fewer than :data:`MIN_CALLS` calls
in a window say too little about a rate to page anyone.

Every state change is logged, and, with a webhook URL, posted in Alertmanager's
webhook format (:class:`~otel_monitor.console.webhook.WebhookNotifier`), from a
thread of its own, with bounded retries.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from otel_monitor.alerting.rules import (
    BURN_RATES,
    HEALTH_CHECK,
    HTTP_URL,
    QUEUE_DEPTH_CRITICAL,
    QUEUE_NAME,
    promql_number,
)
from otel_monitor.console.aggregates import Queries
from otel_monitor.console.queues import queue_depths_at
from otel_monitor.console.store import MINUTE_NS, Histogram, ServiceRollups, Store
from otel_monitor.console.uptime import UptimeBook
from otel_monitor.console.webhook import WebhookNotifier
from otel_monitor.semantics.alert_timing import (
    DEFAULT_RUNBOOK_BASE_URL,
    TIMINGS,
    pending_period,
    runbook_url,
    seconds,
)

_log = logging.getLogger("otel_monitor.console.alerts")

# Fewer calls than this in the window say too little about a rate to page anyone.
MIN_CALLS = 5
# An evaluation from the event loop works out this many services' conditions between checks of
# the time it has taken (see AlertBook.evaluate_in_steps).
_SERVICES_PER_STEP = 20
# State changes logged one by one per evaluation; past it, one line counts the rest (a
# thousand services alerting at once are one line each on the alerts page, not in the log).
_CHANGES_LOGGED = 50
_SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


@dataclass
class Alert:
    """What the console shows: one alert per kind (``rule``) and subject."""

    id: str
    rule: str
    service: str
    subject: str
    severity: str
    summary: str
    value: float | None
    threshold: float
    state: str = "firing"
    started: int = 0  # ms: when it first fired (kept across an escalation and a restart)
    resolved: int | None = None
    acknowledged: bool = False
    acknowledged_at: int | None = None
    acknowledged_by: str | None = None  # who, as the acknowledging request said
    alertname: str = ""  # the Prometheus rule now deciding severity and threshold


class _RuleSubject:
    """The identities of a rule's alert for one subject: one per rule, and one per family of rules."""

    alertname: str
    family: str
    service: str
    subject: str
    timing: str  # the rule's key in TIMINGS when several rules share the alert name, else ""

    @property
    def rule(self) -> str:
        """The rule's key in TIMINGS: the alert name, or the alert name and long window of a burn rate."""
        return self.timing or self.alertname

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.service}:{self.subject}"

    @property
    def family_id(self) -> str:
        return f"{self.family}:{self.service}:{self.subject}"


@dataclass
class Condition(_RuleSubject):
    """One rule whose condition holds now, for one subject."""

    alertname: str
    family: str
    service: str
    subject: str
    value: float | None
    threshold: float
    summary: str
    labels: dict[str, str] = field(default_factory=dict)
    timing: str = ""


@dataclass
class RuleState(_RuleSubject):
    """A Prometheus active alert: pending or firing (times in ms)."""

    alertname: str
    family: str
    service: str
    subject: str
    severity: str
    state: str  # "pending" or "firing"
    active_at: int
    fired_at: int | None = None
    keep_firing_since: int | None = None
    value: float | None = None
    threshold: float = 0.0
    summary: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    timing: str = ""


class Journal(Protocol):
    """Where alert state is kept across restarts (the ``--db`` file)."""

    def save_alert_state(self, state: dict[str, Any]) -> None: ...

    def append_resolved_alert(self, alert: dict[str, Any]) -> None: ...


# --- the conditions ----------------------------------------------------------------------------


class _Window(Queries):
    """Queries over any whole number of minutes, like the rules' range selectors; "every service"
    means those of ``only`` when it is set (an evaluation a few services at a time)."""

    only: list[str] | None = None

    def _first_minute(self, window: str) -> int:
        return self.now_ns // MINUTE_NS - int(window.removesuffix("m")) + 1

    def _rollups(self, service: str | None) -> list[tuple[str, ServiceRollups]]:
        if service or self.only is None:
            return super()._rollups(service)
        kept = self.store.rollups
        return [(s, kept[s]) for s in self.only if s in kept]


def _window(timing_alert: str) -> str:
    return f"{seconds(TIMINGS[timing_alert].window) // 60}m"


def share_above(hist: Histogram, bound: float) -> float | None:
    """Share of the calls that took longer than ``bound`` (a bucket boundary, as in the rules)."""
    if not hist.count or hist.bounds is None:
        return None
    bounds = hist.bounds
    buckets: Any = hist.buckets
    items = buckets.items() if isinstance(buckets, Mapping) else enumerate(buckets)
    # Bucket i holds the calls up to bounds[i]; the last one those above every bound.
    within = sum(c for i, c in items if i < len(bounds) and bounds[i] <= bound)
    return 1 - within / hist.count


def _op_labels(queries: Queries, service: str, operation: str) -> dict[str, str]:
    return {
        "job": service,
        "monitor_operation": operation,
        "slo": operation if operation in queries.slos.operations else "default",
    }


def conditions(
    queries: Queries, services: list[str] | None = None, uptime: UptimeBook | None = None
) -> list[Condition]:
    """Every rule condition that holds at ``queries.now_ns`` (for ``services`` only, when given);
    the uptime objectives' with ``uptime``, the book of the config file's ``uptime:`` section."""
    q = _Window(queries.store, queries.now_ns)
    q.only = services
    found: list[Condition] = []
    five = q.operation_histograms(None, _window("OperationSuccessRateLow"))
    for (svc, op), (_, hist) in sorted(five.items()):
        if hist.count < MIN_CALLS:
            continue
        t = q.slos.for_operation(op)
        labels = _op_labels(q, svc, op)
        success = (hist.count - hist.errors) / hist.count
        for name, limit in (
            ("OperationSuccessRateCritical", t.success_critical),
            ("OperationSuccessRateLow", t.success_warning),
        ):
            if success < limit:
                found.append(
                    Condition(
                        name,
                        "success_rate",
                        svc,
                        op,
                        success,
                        limit,
                        f"{op}: success rate {success:.1%} below {limit:.0%}",
                        labels,
                    )
                )
        error_rate = hist.errors / hist.count
        if error_rate > t.error_rate_critical:
            found.append(
                Condition(
                    "OperationErrorRateHigh",
                    "error_rate",
                    svc,
                    op,
                    error_rate,
                    t.error_rate_critical,
                    f"{op}: error rate {error_rate:.1%} above {t.error_rate_critical:.0%} for {t.error_rate_for}",
                    labels,
                )
            )
        p = f"p{t.latency_percentile * 100:g}"
        for name, limit in (
            ("OperationLatencyCritical", t.latency_critical),
            ("OperationLatencyHigh", t.latency_warning),
        ):
            share = share_above(hist, limit)
            # "p95 above 1 s" is "more than 5 % of the calls above 1 s": exact on a bucket boundary.
            if share is not None and share > 1 - t.latency_percentile + 1e-12:
                found.append(
                    Condition(
                        name,
                        "latency",
                        svc,
                        op,
                        share,
                        limit,
                        f"{op}: {share:.1%} of calls took longer than {limit:g}s ({p} above {limit:g}s)",
                        labels,
                    )
                )
    ten = _window("FallbackShareHigh")
    fallbacks = q.fallbacks(None, ten)
    for (svc, op), (_, hist) in sorted(q.operation_histograms(None, ten).items()):
        served = fallbacks.get((svc, op))
        t = q.slos.for_operation(op)
        if hist.count >= MIN_CALLS and served is not None and served / hist.count > t.fallback_warning:
            share = served / hist.count
            found.append(
                Condition(
                    "FallbackShareHigh",
                    "fallback_share",
                    svc,
                    op,
                    share,
                    t.fallback_warning,
                    f"{op}: {share:.0%} of calls served by a fallback",
                    _op_labels(q, svc, op),
                )
            )
    limit = q.slos.defaults.cache_hit_warning
    for (svc, cache), c in sorted(q.cache_hit_rates(None, _window("CacheHitRateLow")).items()):
        if c["requests"] >= MIN_CALLS and c["hit_rate"] is not None and c["hit_rate"] < limit:
            found.append(
                Condition(
                    "CacheHitRateLow",
                    "cache_hit_rate",
                    svc,
                    cache,
                    c["hit_rate"],
                    limit,
                    f"cache {cache}: hit rate {c['hit_rate']:.0%} below {limit:.0%}",
                    {"job": svc, "monitor_cache_name": cache},
                )
            )
    for check in q.health(None, "5m"):
        if check["value"] is None:
            continue  # no current report (an expired instance): no series, as in Prometheus
        labels = {"job": check["service"], "monitor_health_check": check["check"]}
        if check["critical"] and check["value"] == 0:
            found.append(
                Condition(
                    "HealthCheckFailing",
                    "health",
                    check["service"],
                    check["check"],
                    check["value"],
                    1.0,
                    f"critical check {check['check']} is down",
                    labels,
                )
            )
        if check["value"] < 1:
            found.append(
                Condition(
                    "HealthCheckDegraded",
                    "health",
                    check["service"],
                    check["check"],
                    check["value"],
                    1.0,
                    f"check {check['check']} is {check['state']}",
                    labels,
                )
            )
    found += _queue_conditions(q, services)
    if uptime is not None:
        found += _uptime_conditions(uptime, q.now_ns, services)
    return found


def _queue_conditions(q: Queries, services: list[str] | None) -> list[Condition]:
    """``QueueDepthHigh``: a queue's depth summed over the service's instances above the rule's limit."""
    found = []
    for (svc, queue), depth in sorted(queue_depths_at(q.store, q.now_ns // MINUTE_NS, services).items()):
        if depth > QUEUE_DEPTH_CRITICAL:
            found.append(
                Condition(
                    "QueueDepthHigh",
                    "queue_depth",
                    svc,
                    queue,
                    depth,
                    QUEUE_DEPTH_CRITICAL,
                    f"queue {queue}: {depth:g} items waiting, above {QUEUE_DEPTH_CRITICAL}",
                    {"job": svc, QUEUE_NAME: queue},
                )
            )
    return found


def _uptime_conditions(uptime: UptimeBook, now_ns: int, services: list[str] | None) -> list[Condition]:
    """``UptimeBelowObjective``: a listed probe's or a health check's 30-day uptime below its objective."""
    found = []
    for t in uptime.objective_uptimes(now_ns, services):
        what = t["target"] if t["kind"] == "probe" else f"health check {t['target']}"
        target_label = HTTP_URL if t["kind"] == "probe" else HEALTH_CHECK
        labels = {
            "job": t["service"],
            target_label: t["target"],
            "uptime_of": t["kind"],
            "uptime_target": t["uptime_target"],
        }
        found += _burn_conditions(t, what, labels)
        if t["uptime"] >= t["objective"]:
            continue
        found.append(
            Condition(
                "UptimeBelowObjective",
                "uptime",
                t["service"],
                t["target"],
                t["uptime"],
                t["objective"],
                f"{what}: up {t['uptime']:.3%} of the last 30 days, objective {t['objective']:.3%}",
                labels,
            )
        )
    return found


def _burn_conditions(t: dict[str, Any], what: str, labels: dict[str, str]) -> list[Condition]:
    """``UptimeBudgetBurn``: down more than the burn rate times the budget over both of a rule's windows."""
    found = []
    budget = 1 - t["objective"]
    for _, rate, long_window, short_window in BURN_RATES:
        # The limit as the rule file writes it, so both compare with the same number.
        limit = float(promql_number(rate * budget))
        short = t["over"](seconds(short_window) // 60)
        if short is None or 1 - short <= limit:
            continue  # the usual case: the long window is not worked out
        long = t["over"](seconds(long_window) // 60)
        if long is None or 1 - long <= limit:
            continue
        found.append(
            Condition(
                "UptimeBudgetBurn",
                "uptime",
                labels["job"],
                t["target"],
                1 - long,
                limit,
                f"{what}: down {1 - long:.2%} of the last {long_window} and {1 - short:.2%} of the last "
                f"{short_window}, {rate:g}x its downtime budget",
                {**labels, "long_window": long_window, "short_window": short_window},
                timing=f"UptimeBudgetBurn/{long_window}",
            )
        )
    return found


# --- notifications -----------------------------------------------------------------------------


def _rfc3339(ms: int | None) -> str:
    if ms is None:
        return "0001-01-01T00:00:00Z"  # Alertmanager's "not ended"
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def alertmanager_payload(
    states: list[tuple[RuleState, str, int | None]], generator_url: str, runbook_base: str = DEFAULT_RUNBOOK_BASE_URL
) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) for (alert, "firing"|"resolved", ended at ms)."""
    alerts: list[dict[str, Any]] = []
    label_sets: list[set[tuple[str, str]]] = []
    for s, status, ended in states:
        labels = {"alertname": s.alertname, "severity": s.severity, **s.labels}
        label_sets.append(set(labels.items()))
        fingerprint = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
        alerts.append(
            {
                "status": status,
                "labels": labels,
                "annotations": {
                    "summary": s.summary,
                    "description": f"value {s.value!r}, threshold {s.threshold!r}",
                    "runbook_url": runbook_url(s.alertname, runbook_base),
                },
                "startsAt": _rfc3339(s.fired_at or s.active_at),
                "endsAt": _rfc3339(ended if status == "resolved" else None),
                "generatorURL": generator_url,
                "fingerprint": fingerprint,
            }
        )
    common = set.intersection(*label_sets) if label_sets else set()
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "version": "4",
        "groupKey": "{}:{}",
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "otel-monitor-console",
        "groupLabels": {},
        "commonLabels": dict(sorted(common)),
        "commonAnnotations": {},
        "externalURL": generator_url.split("/#", 1)[0],
        "alerts": alerts,
    }


# --- the book ----------------------------------------------------------------------------------


class AlertBook:
    """Rule states, firing and resolved alerts; acknowledgements survive until the alert resolves."""

    def __init__(
        self,
        store: Store,
        on_ack: Callable[[str, int], None] | None = None,
        keep_resolved: int = 200,
        journal: Journal | None = None,
        notifier: WebhookNotifier | None = None,
        generator_url: str = "",
    ) -> None:
        self.store = store
        self.rules: dict[str, RuleState] = {}  # Prometheus' active alerts, by rule and subject
        self.firing: dict[str, Alert] = {}
        self.resolved: deque[Alert] = deque(maxlen=keep_resolved)
        self.acknowledged: dict[str, int] = {}  # restored from the database
        self.journal = journal
        self.notifier = notifier
        self.generator_url = generator_url or "http://127.0.0.1/#/alerts"
        self.runbook_base = DEFAULT_RUNBOOK_BASE_URL  # the config file's alerting.runbook_base_url
        self.uptime: UptimeBook | None = None  # the uptime objectives' samples, when the console has them
        self._on_ack = on_ack
        self._lock = threading.Lock()
        self._unlogged = 0  # changes of this evaluation past _CHANGES_LOGGED

    # --- persistence ---------------------------------------------------------------
    def restore(self, state: dict[str, Any], resolved: list[dict[str, Any]]) -> None:
        """State saved by an earlier run (rule states, firing alerts) and its history, newest first."""
        with self._lock:
            self.rules = {k: RuleState(**v) for k, v in state.get("rules", {}).items()}
            self.firing = {k: Alert(**v) for k, v in state.get("firing", {}).items()}
            self.resolved.clear()
            self.resolved.extend(Alert(**a) for a in resolved[: self.resolved.maxlen])

    def _state(self) -> dict[str, Any]:
        return {
            "rules": {k: asdict(v) for k, v in self.rules.items()},
            "firing": {k: asdict(v) for k, v in self.firing.items()},
        }

    # --- evaluation ----------------------------------------------------------------
    async def evaluate_in_steps(self, now_ns: int | None = None, budget_s: float = 0.01) -> None:
        """:meth:`evaluate` from the event loop: the conditions are worked out a few services at a
        time, and the loop gets control back every ``budget_s`` seconds, so requests are answered
        meanwhile however many services there are."""
        now_ns = now_ns or time.time_ns()
        with self.store.lock:
            services = list(self.store.rollups)
        queries = Queries(self.store, now_ns)
        found: list[Condition] = []
        since = time.perf_counter()
        for i in range(0, len(services), _SERVICES_PER_STEP):
            found.extend(conditions(queries, services[i : i + _SERVICES_PER_STEP], self.uptime))
            if time.perf_counter() - since >= budget_s:
                await asyncio.sleep(0)
                since = time.perf_counter()
        self.evaluate(now_ns, found)

    def evaluate(self, now_ns: int | None = None, found: list[Condition] | None = None) -> None:
        """Update rule states and alerts from the conditions holding now (``found``: already worked out)."""
        now_ns = now_ns or time.time_ns()
        now = now_ns // 1_000_000
        if found is None:
            found = conditions(Queries(self.store, now_ns), uptime=self.uptime)
        holding = {c.key: c for c in found}
        error_rate_for = {op: t.error_rate_for for op, t in self.store.slos.operations.items()}
        default_for = self.store.slos.defaults.error_rate_for
        changes: list[tuple[RuleState, str, int | None]] = []
        resolved_now: list[Alert] = []
        with self._lock:
            self._unlogged = -_CHANGES_LOGGED
            for key, s in list(self.rules.items()):
                if key in holding:
                    s.keep_firing_since = None
                    continue
                keep = seconds(TIMINGS[s.rule].keep_firing_for) * 1000
                if s.state == "firing" and keep:
                    if s.keep_firing_since is None:
                        s.keep_firing_since = now
                    if now - s.keep_firing_since < keep:
                        continue
                del self.rules[key]
                changes.append((s, "resolved" if s.state == "firing" else "inactive", now))
            for key, c in holding.items():
                existing = self.rules.get(key)
                if existing is not None:
                    s = existing
                else:
                    s = self.rules[key] = RuleState(
                        c.alertname, c.family, c.service, c.subject, TIMINGS[c.rule].severity, "pending", now
                    )
                    s.timing = c.timing
                    changes.append((s, "pending", None))
                s.value, s.threshold, s.summary, s.labels = c.value, c.threshold, c.summary, c.labels
                hold = seconds(pending_period(c.rule, error_rate_for.get(c.subject, default_for))) * 1000
                if s.state == "pending" and now - s.active_at >= hold:
                    s.state, s.fired_at = "firing", now
                    changes.append((s, "firing", None))
            resolved_now = self._families(now)
            state = self._state() if self.journal is not None and (changes or resolved_now) else None
        for s, change, _ in changes:
            self._note(
                "otel-monitor console: alert %s %s/%s %s (%s, value %s, threshold %s)",
                s.alertname,
                s.service,
                s.subject,
                change,
                s.severity,
                _short(s.value),
                _short(s.threshold),
            )
        if self._unlogged > 0:
            _log.info("otel-monitor console: and %d more alert changes (listed on the alerts page)", self._unlogged)
        if self.journal is not None and state is not None:
            self.journal.save_alert_state(state)
            for alert in resolved_now:
                self.journal.append_resolved_alert(asdict(alert))
        notify = [(s, change, ended) for s, change, ended in changes if change in ("firing", "resolved")]
        if self.notifier is not None and notify:
            self.notifier.notify(alertmanager_payload(notify, self.generator_url, self.runbook_base))

    def _families(self, now: int) -> list[Alert]:
        """Fold the firing rule states into one alert per kind and subject; returns those resolved now."""
        by_family: dict[str, list[RuleState]] = {}
        for s in self.rules.values():
            if s.state == "firing":
                by_family.setdefault(s.family_id, []).append(s)
        for family_id, states in by_family.items():
            top = min(states, key=lambda s: _SEVERITY_ORDER.get(s.severity, 3))
            alert = self.firing.get(family_id)
            if alert is None:
                alert = self.firing[family_id] = Alert(
                    family_id,
                    top.family,
                    top.service,
                    top.subject,
                    top.severity,
                    top.summary,
                    top.value,
                    top.threshold,
                    started=min(s.fired_at or now for s in states),
                )
                if family_id in self.acknowledged:
                    alert.acknowledged, alert.acknowledged_at = True, self.acknowledged[family_id]
                self._note("otel-monitor console: alert %s firing (%s): %s", family_id, top.severity, top.summary)
            elif alert.severity != top.severity:
                self._note(
                    "otel-monitor console: alert %s %s -> %s: %s", family_id, alert.severity, top.severity, top.summary
                )
            # Severity, value and threshold follow the most severe rule firing now (an escalation too).
            alert.severity, alert.summary, alert.value, alert.threshold = (
                top.severity,
                top.summary,
                top.value,
                top.threshold,
            )
            alert.alertname = top.alertname
        resolved = []
        for family_id in [f for f in self.firing if f not in by_family]:
            alert = self.firing.pop(family_id)
            alert.state, alert.resolved = "resolved", now
            self.acknowledged.pop(family_id, None)
            self.resolved.appendleft(alert)
            resolved.append(alert)
            self._note("otel-monitor console: alert %s resolved", family_id)
        return resolved

    def _note(self, message: str, *args: object) -> None:
        """Log a state change, up to _CHANGES_LOGGED of them per evaluation (the rest are counted)."""
        self._unlogged += 1
        if self._unlogged <= 0:
            _log.info(message, *args)

    def acknowledge(self, alert_id: str, by: str | None = None) -> bool:
        """Acknowledge a firing alert, noting who (``by``, a name or e-mail; kept with the alert's state)."""
        with self._lock:
            alert = self.firing.get(alert_id)
            if alert is None:
                return False
            alert.acknowledged, alert.acknowledged_at = True, int(time.time() * 1000)
            alert.acknowledged_by = by
            self.acknowledged[alert_id] = alert.acknowledged_at
            state = self._state()
        if self._on_ack:
            self._on_ack(alert_id, alert.acknowledged_at)
        if self.journal is not None:
            self.journal.save_alert_state(state)
        return True

    def as_json(self, service: str | None) -> dict[str, Any]:
        with self._lock:
            firing = [asdict(a) for a in self.firing.values() if not service or a.service == service]
            resolved = [asdict(a) for a in self.resolved if not service or a.service == service]
            pending = [
                {
                    "alertname": s.alertname,
                    "id": s.family_id,
                    "service": s.service,
                    "subject": s.subject,
                    "severity": s.severity,
                    "summary": s.summary,
                    "value": s.value,
                    "threshold": s.threshold,
                    "active_since": s.active_at,
                }
                for s in self.rules.values()
                if s.state == "pending" and (not service or s.service == service)
            ]
        for entry in (*firing, *resolved, *pending):
            entry["runbook_url"] = runbook_url(entry["alertname"], self.runbook_base) if entry["alertname"] else None
        firing.sort(key=lambda a: (_SEVERITY_ORDER.get(a["severity"], 3), a["started"]))
        pending.sort(key=lambda a: (a["active_since"], a["alertname"]))
        webhook = self.notifier.stats() if self.notifier is not None else None
        return {"firing": firing, "pending": pending, "resolved": resolved, "webhook": webhook}

    def timeline_entry(self) -> dict[str, str]:
        """Rule key -> "pending" or "firing" (what Prometheus' ALERTS series would hold)."""
        with self._lock:
            return {k: s.state for k, s in self.rules.items()}


def _short(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"
